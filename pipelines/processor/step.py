"""One seat change against the processor's state: the verdict and what to publish (pure).

The database decides: a change is refused only when it is older than what is already
published (a redelivery). A change that breaks a business rule is applied like any other, and
its anomalies travel with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pipelines.processor.aggregate import Availability, Deleted, SeatKey, SectionKey
from pipelines.processor.core import (
    Anomaly,
    SeatChange,
    SeatState,
    anomalies_of,
    enrich,
    new_tuple,
)
from pipelines.processor.reference import Reference

__all__ = [
    "Applied", "Duplicate", "Unresolved", "Verdict", "apply_change", "apply_truncate",
    "is_stale", "undo",
]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An older or repeated version (Debezium delivers at least once): skipped."""

    seen_version: int


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A referenced event, seat, section or price level is not known yet: wait for it."""

    missing: str


_NO_ANOMALIES: tuple[Anomaly, ...] = ()


class Applied(NamedTuple):  # one per published change: a tuple is the cheapest to build
    """The change is in the state; `previous` and `was_deleted` undo it, the record is to be
    published (None: a tombstone)."""

    key: SeatKey
    previous: SeatState | None
    new: SeatState | None
    record_value: dict[str, Any] | None
    anomalies: tuple[Anomaly, ...] = _NO_ANOMALIES
    was_deleted: Deleted | None = None  # the seat's remembered delete before this change

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


Verdict = Duplicate | Unresolved | Applied


def is_stale(change: SeatChange, previous: SeatState | None, gone: Deleted | None) -> bool:
    """Whether a change is older than (or the same as) what is published for its seat.

    A seat's streamed changes are ordered by LSN (a row's changes are serialised by its lock,
    so their LSNs grow in commit order), which still holds when the seat is deleted and
    inserted again at version 1; versions order the rest. A snapshot row (a backfill) of the
    version already seen is published again: that is how a backfill repairs a downstream topic.
    A delete of a seat that is not there has nothing left to do.
    """
    if previous is not None:
        if change.snapshot:
            return change.version < previous.version
        if change.lsn is not None and previous.lsn is not None:
            return change.lsn <= previous.lsn
        if change.op == "d":
            return change.version < previous.version
        return change.version <= previous.version
    if change.op == "d":
        return True
    if gone is None:
        return False
    if change.lsn is not None and gone.lsn is not None:
        return change.lsn <= gone.lsn
    return change.version <= gone.version


def apply_change(change: SeatChange, availability: Availability, reference: Reference, *,
                 published_at_ms: int, give_up_waiting: bool = False) -> Verdict:
    """Fold a change into `availability` (mutated in place) unless it is stale.

    A change whose references are unknown waits (Unresolved) until `give_up_waiting`: then it
    is published with what is known, and an `unresolved_reference` anomaly.
    """
    key = change.key
    previous = availability.seats.get(key)
    gone = availability.deleted.get(key) if previous is None and availability.deleted else None
    if is_stale(change, previous, gone):
        seen = previous.version if previous is not None else gone.version if gone else 0
        return Duplicate(seen)
    if change.op == "d":
        availability.put(key, None)
        availability.remember_delete(key, Deleted(change.version, change.lsn))
        return new_tuple(Applied, (key, previous, None, None, _NO_ANOMALIES, None))
    anomalies = anomalies_of(change, previous)
    missing = reference.missing(change.event_id, change.seat_id, change.price_level_id)
    if missing is not None:
        if not give_up_waiting:
            return Unresolved(missing)
        anomalies.append(Anomaly("unresolved_reference",
                                 f"{missing} of seat {change.seat_id} never arrived"))
    new, record_value = enrich(change, reference, published_at_ms=published_at_ms)
    availability.put(key, new)
    if gone is not None:
        availability.forget_delete(key)
    return new_tuple(Applied, (key, previous, new, record_value,
                               tuple(anomalies) if anomalies else _NO_ANOMALIES, gone))


def apply_truncate(availability: Availability, *, version: int, lsn: int | None,
                   event_ids: set[int] | None = None) -> list[Applied]:
    """A truncate of seat_inventory: every seat (of the given events) is deleted, and
    remembered as deleted at the truncate's LSN so that no older change brings it back. A seat
    changed after the truncate (a redelivered truncate) stays."""
    applied = []
    for key in availability.seats_of(event_ids):
        state = availability.seats[key]
        if lsn is not None and state.lsn is not None and state.lsn > lsn:
            continue
        previous = availability.put(key, None)
        availability.remember_delete(key, Deleted(
            max(version, previous.version if previous else 0), lsn))
        applied.append(new_tuple(Applied, (key, previous, None, None, _NO_ANOMALIES, None)))
    return applied


def undo(availability: Availability, applied: Applied) -> None:
    """Put a seat back as it was before `applied` (the batch was aborted, or not publishable)."""
    availability.put(applied.key, applied.previous)
    availability.remember_delete(applied.key, applied.was_deleted)
