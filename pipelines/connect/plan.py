"""The difference between connector files and what runs on Connect, with secrets masked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines.connect.lint import is_secret_key

__all__ = ["MASK", "ConnectorPlan", "KeyChange", "Plan", "mask_value", "plan_connectors"]

MASK = "********"
_REFERENCE = re.compile(r"^\$\{[A-Za-z0-9_]+:[^}]*\}$")

Action = Literal["add", "change", "unchanged", "orphan", "remove"]


def mask_value(key: str, value: str | None) -> str | None:
    """A secret-like key's plain value becomes ********; provider references stay readable."""
    if value is None or not is_secret_key(key) or _REFERENCE.match(value.strip()):
        return value
    return MASK


@dataclass(frozen=True)
class KeyChange:
    key: str
    old: str | None
    new: str | None

    @property
    def kind(self) -> Literal["added", "changed", "removed"]:
        return "added" if self.old is None else "removed" if self.new is None else "changed"

    def masked(self) -> KeyChange:
        return KeyChange(self.key, mask_value(self.key, self.old), mask_value(self.key, self.new))


@dataclass(frozen=True)
class ConnectorPlan:
    name: str
    # add: file, not running; change: both, configs differ; orphan: runs without a file (kept);
    # remove: orphan that --prune deletes.
    action: Action
    changes: tuple[KeyChange, ...] = ()
    wanted: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"connector": self.name, "action": self.action,
                "changes": [{"key": c.key, "change": c.kind, "old": c.old, "new": c.new}
                            for c in (ch.masked() for ch in self.changes)]}


@dataclass(frozen=True)
class Plan:
    connectors: tuple[ConnectorPlan, ...]

    def of(self, *actions: Action) -> list[ConnectorPlan]:
        return [c for c in self.connectors if c.action in actions]

    @property
    def has_changes(self) -> bool:
        return bool(self.of("add", "change", "remove"))

    def summary(self) -> dict[str, int]:
        counts = {a: 0 for a in ("add", "change", "unchanged", "orphan", "remove")}
        for c in self.connectors:
            counts[c.action] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "connectors": [c.as_dict() for c in self.connectors]}


def _diff(old: dict[str, str], new: dict[str, str]) -> tuple[KeyChange, ...]:
    keys = sorted(set(old) | set(new))
    return tuple(KeyChange(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


def plan_connectors(wanted: dict[str, dict[str, str]], running: dict[str, dict[str, str]],
                    *, prune: bool = False) -> Plan:
    """What apply would do: `wanted` from the files and `running` from Connect, name -> config.

    Configs compare with their "name" key, which Connect adds to every stored config.
    """
    plans: list[ConnectorPlan] = []
    for name, config in sorted(wanted.items()):
        target = {**config, "name": name}
        current = running.get(name)
        if current is None:
            plans.append(ConnectorPlan(name, "add", _diff({}, target), target))
        else:
            changes = _diff(current, target)
            plans.append(ConnectorPlan(name, "change" if changes else "unchanged", changes, target))
    for name in sorted(set(running) - set(wanted)):
        plans.append(ConnectorPlan(name, "remove" if prune else "orphan", _diff(running[name], {})))
    return Plan(tuple(plans))
