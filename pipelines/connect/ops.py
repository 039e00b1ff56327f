"""What the CLI and Dagster do with connectors: deploy (lint, plan, validate, apply), status, offsets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from pipelines.connect.client import ConnectClient
from pipelines.connect.errors import ConnectError, ConnectorRefusedError
from pipelines.connect.files import ConnectorFile
from pipelines.connect.lint import (
    LintIssue,
    TicketingHost,
    lint_connectors,
    ticketing_host_issues,
)
from pipelines.connect.plan import Plan, mask_value, plan_connectors
from pipelines.polling import PollTimeoutError, poll

__all__ = [
    "ConnectorHealth",
    "DeployReport",
    "FieldError",
    "TaskHealth",
    "apply_connector",
    "connector_health",
    "deploy_connectors",
    "drop_replication_slot",
    "format_offset",
    "plan_against",
    "reset_offsets",
    "short_trace",
    "validate_config",
]

log = logging.getLogger(__name__)


# -- validate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    connector: str
    key: str
    value: str | None
    errors: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"connector": self.connector, "key": self.key, "value": self.value,
                "errors": list(self.errors)}


def field_errors(name: str, response: dict[str, Any]) -> list[FieldError]:
    """The fields with errors in a response of the validate endpoint, values masked."""
    found = []
    for item in response.get("configs", []):
        value = item.get("value") or {}
        if value.get("errors"):
            key = value.get("name", "?")
            found.append(FieldError(name, key, mask_value(key, value.get("value")),
                                    tuple(value["errors"])))
    return found


def validate_config(client: ConnectClient, name: str, config: dict[str, str], *,
                    ticketing: TicketingHost) -> list[FieldError]:
    """Connect's own validation of one connector's config; [] when it is valid.

    A config aimed at another database than the ticketing host is refused here, without a
    request: Debezium's validation logs in to the database the config names, with the
    credentials the worker resolves for it."""
    elsewhere = ticketing_host_issues([ConnectorFile(Path(f"{name}.json"), name, config)],
                                      ticketing)
    if elsewhere:
        return [FieldError(name, i.key, config.get(i.key), (i.message,)) for i in elsewhere]
    cls = config.get("connector.class")
    if not cls:
        return [FieldError(name, "connector.class", None, ("is required",))]
    return field_errors(name, client.validate(cls, {**config, "name": name}))


# -- plan and apply --------------------------------------------------------------------------


def plan_against(client: ConnectClient, connectors: list[ConnectorFile], *,
                 prune: bool = False) -> Plan:
    running = {name: item["config"] for name, item in client.connectors().items()}
    return plan_connectors({c.name: c.config for c in connectors}, running, prune=prune)


@dataclass
class DeployReport:
    """What a deploy found and did; `stage` says where it stopped."""

    stage: Literal["lint", "plan", "validate", "applied"] = "lint"
    lint: list[LintIssue] = field(default_factory=list)
    plan: Plan | None = None
    invalid: list[FieldError] = field(default_factory=list)
    applied: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.lint and not self.invalid

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "ok": self.ok,
            "lint": [i.as_dict() for i in self.lint],
            "plan": self.plan.as_dict() if self.plan else None,
            "invalid": [e.as_dict() for e in self.invalid],
            "applied": self.applied,
        }


def deploy_connectors(
    client: ConnectClient, connectors: list[ConnectorFile], *, ticketing: TicketingHost,
    dry_run: bool = False, prune: bool = False,
    confirm_prune: Callable[[list[str]], bool] = lambda _: True,
) -> DeployReport:
    """Lint, plan, validate what changes, then PUT only what changed (and delete orphans if pruning).

    Nothing is applied unless every changed config lints and validates clean; lint (among its
    rules: every connector captures from `ticketing`) runs before any request to Connect.
    """
    report = DeployReport(lint=lint_connectors(connectors, ticketing=ticketing))
    if report.lint:
        return report
    report.stage = "plan"
    report.plan = plan_against(client, connectors, prune=prune)
    if dry_run:
        return report
    report.stage = "validate"
    todo = report.plan.of("add", "change")
    for item in todo:
        report.invalid.extend(validate_config(client, item.name, item.wanted,
                                              ticketing=ticketing))
    if report.invalid:
        return report
    report.stage = "applied"
    for item in todo:
        client.put_config(item.name, item.wanted)
        report.applied[item.name] = "created" if item.action == "add" else "updated"
        log.info("%s connector %s", report.applied[item.name], item.name)
    removals = [c.name for c in report.plan.of("remove")]
    if removals and confirm_prune(removals):
        for name in removals:
            client.delete(name)
            report.applied[name] = "deleted"
    return report


def apply_connector(client: ConnectClient, file: ConnectorFile, *,
                    ticketing: TicketingHost) -> Literal["created", "updated", "unchanged"]:
    """Create or update one connector from its file, once it lints clean (before any request)
    and Connect validated it."""
    issues = lint_connectors([file], ticketing=ticketing)
    if issues:
        raise ConnectorRefusedError(f"{file.name}: refused, nothing applied ({len(issues)} lint "
                                    f"finding(s)); {issues[0]}")
    current = client.connector_config(file.name)
    wanted = {**file.config, "name": file.name}
    if current == wanted:
        return "unchanged"
    errors = validate_config(client, file.name, file.config, ticketing=ticketing)
    if errors:
        first = errors[0]
        raise ConnectError(f"{file.name}: invalid config ({len(errors)} field(s)); "
                           f"{first.key}: {first.errors[0]}")
    client.put_config(file.name, wanted)
    log.info("%s connector %s", "updated" if current else "created", file.name)
    return "updated" if current else "created"


# -- status ----------------------------------------------------------------------------------


def short_trace(trace: str | None, *, width: int = 300) -> str:
    """A Java stack trace shortened to its first line and its root cause."""
    if not trace:
        return ""
    lines = [ln.strip() for ln in trace.strip().splitlines() if ln.strip()]
    head = lines[0]
    causes = [ln for ln in lines if ln.startswith("Caused by:")]
    text = head if not causes or causes[-1] == head else f"{head} | {causes[-1]}"
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class TaskHealth:
    id: int
    state: str
    worker: str
    trace: str


@dataclass(frozen=True)
class ConnectorHealth:
    name: str
    type: str
    state: str
    worker: str
    trace: str
    tasks: tuple[TaskHealth, ...]

    @property
    def failed(self) -> bool:
        return self.state == "FAILED" or any(t.state == "FAILED" for t in self.tasks)

    def as_dict(self) -> dict[str, Any]:
        return {"connector": self.name, "type": self.type, "state": self.state,
                "worker": self.worker, "trace": self.trace, "failed": self.failed,
                "tasks": [{"id": t.id, "state": t.state, "worker": t.worker, "trace": t.trace}
                          for t in self.tasks]}


def connector_health(name: str, status: dict[str, Any] | None) -> ConnectorHealth:
    """One connector's status response as values; None (no such connector) reads as ABSENT."""
    if not status:
        return ConnectorHealth(name, "", "ABSENT", "", "", ())
    conn = status.get("connector", {})
    tasks = tuple(TaskHealth(t.get("id", 0), t.get("state", "?"), t.get("worker_id", ""),
                             short_trace(t.get("trace")))
                  for t in sorted(status.get("tasks", []), key=lambda t: t.get("id", 0)))
    return ConnectorHealth(name, status.get("type", ""), conn.get("state", "?"),
                           conn.get("worker_id", ""), short_trace(conn.get("trace")), tasks)


# -- offsets ---------------------------------------------------------------------------------


def format_offset(key: str, value: Any) -> str:
    """An offset value as PostgreSQL writes it: LSNs as 0/39C05C8, the rest as they are."""
    if key.startswith("lsn") and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
    return str(value)


def drop_replication_slot(superuser_dsn: str, slot: str, *, timeout_s: float = 30) -> bool:
    """Drop a replication slot once no one reads it; False if it did not exist."""
    dsn = superuser_dsn
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            return _drop_when_idle(conn, slot, timeout_s)
    except psycopg.Error as e:
        raise ConnectError(f"cannot drop replication slot {slot}: {e}") from e


def _drop_when_idle(conn: psycopg.Connection, slot: str, timeout_s: float) -> bool:
    """Drop the slot once inactive (its reader may take a moment to let go after a stop)."""
    def active() -> bool | None:
        row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,)).fetchone()
        return None if row is None else bool(row[0])

    try:
        if poll(active, until=lambda a: a is not True, timeout_s=timeout_s, every_s=0.5) is None:
            return False
    except PollTimeoutError as e:
        raise ConnectError(f"replication slot {slot} is still in use") from e
    conn.execute(sql.SQL("SELECT pg_drop_replication_slot({})").format(sql.Literal(slot)))
    return True


def reset_offsets(client: ConnectClient, name: str, *, drop_slot: Callable[[str], bool] | None = None,
                  say: Callable[[str], None] = lambda _: None) -> None:
    """Stop the connector, delete its offsets and, with `drop_slot`, its replication slot.

    The connector is left STOPPED; resuming it snapshots again (when the snapshot mode says so).
    """
    config = client.connector_config(name)
    if config is None:
        raise ConnectError(f"connector {name} does not exist")
    client.stop(name)
    client.wait_state(name, "STOPPED")
    say(f"{name}: stopped")
    client.reset_offsets(name)
    say(f"{name}: offsets deleted")
    if drop_slot is not None:
        slot = config.get("slot.name")
        if not slot:
            raise ConnectError(f"{name} has no slot.name; nothing to drop")
        dropped = drop_slot(slot)
        say(f"{name}: replication slot {slot} {'dropped' if dropped else 'did not exist'}")
