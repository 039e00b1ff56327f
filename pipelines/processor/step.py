"""One seat change against the processor's state: the verdict and what to publish (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pipelines.processor.aggregate import Availability, SeatKey, SectionKey
from pipelines.processor.core import SeatChange, SeatState, enrich, new_tuple, rule_violation
from pipelines.processor.reference import Reference

__all__ = [
    "Applied", "Duplicate", "Unresolved", "Verdict", "Violation", "apply_change", "is_duplicate",
]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An older or repeated version (Debezium delivers at least once): skipped."""

    seen_version: int


@dataclass(frozen=True, slots=True)
class Violation:
    """A business rule is broken: the record goes to the dead-letter topic."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A referenced event, seat, section or price level is not known yet."""

    missing: str


class Applied(NamedTuple):  # one per published change: a tuple is the cheapest to build
    """The change is in the state; `previous` undoes it, the record is to be published."""

    key: SeatKey
    previous: SeatState | None
    new: SeatState | None
    record_value: dict[str, Any] | None

    @property
    def record_key(self) -> dict[str, int]:
        return {"event_id": self.key[0], "seat_id": self.key[1]}

    @property
    def sections(self) -> tuple[SectionKey, ...]:
        """Section and price level counters the change moved (one may be named twice)."""
        event_id, previous, new = self.key[0], self.previous, self.new
        if previous is None:
            return () if new is None else ((event_id, new.section_code, new.price_level_id),)
        moved = (event_id, previous.section_code, previous.price_level_id)
        if new is None:
            return (moved,)
        return moved, (event_id, new.section_code, new.price_level_id)


Verdict = Duplicate | Violation | Unresolved | Applied


def is_duplicate(change: SeatChange, seen: int, *, present: bool) -> bool:
    """Whether a change was already published (Debezium delivers at least once).

    A delete carries the row's last version: it is a duplicate once the seat is gone. A
    snapshot row (a backfill) of the version already seen is published again, which is how a
    backfill repairs a downstream topic; an older one never overwrites a newer change.
    """
    if change.op == "d":
        return not present
    if change.snapshot:
        return change.version < seen
    return change.version <= seen


def apply_change(change: SeatChange, availability: Availability, reference: Reference, *,
                 published_at_ms: int) -> Verdict:
    """Validate a change, and when valid fold it into `availability` (mutated in place)."""
    key = change.key
    previous = availability.seats.get(key)
    seen = previous.version if previous is not None else 0
    if is_duplicate(change, seen, present=previous is not None):
        return Duplicate(seen)
    problem = rule_violation(change, previous)
    if problem is not None:
        reason, _, message = problem.partition(": ")
        return Violation(reason, message)
    if change.op == "d":
        availability.put(key, None)
        return new_tuple(Applied, (key, previous, None, None))
    missing = reference.missing(change.event_id, change.seat_id, change.price_level_id)
    if missing is not None:
        return Unresolved(missing)
    new, record_value = enrich(change, reference, published_at_ms=published_at_ms)
    availability.put(key, new)
    return new_tuple(Applied, (key, previous, new, record_value))
