"""Seat, section and event availability as state, kept exact change by change (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from pipelines.processor.core import SeatState

__all__ = ["DELETED_LIMIT", "Availability", "Deleted", "SeatKey", "SectionCounts", "SectionKey"]

SeatKey = tuple[int, int]  # (event_id, seat_id)
SectionKey = tuple[int, str, int]  # (event_id, section_code, price_level_id)
# Deleted seats remembered at most: a seat deleted before the newest million deletes could be
# brought back by a redelivery older than it (Debezium redelivers only what its last offset
# commit left, seconds of changes, so this is far more than needed).
DELETED_LIMIT = 1_000_000


class Deleted(NamedTuple):
    """A deleted seat's last version and the delete's LSN: older changes cannot bring it back."""

    version: int
    lsn: int | None


@dataclass
class SectionCounts:
    open: int = 0
    held: int = 0
    sold: int = 0
    # Prices of the open seats, so the lowest one stays exact when seats close and reopen.
    open_prices: Counter[Decimal] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.open + self.held + self.sold

    def lowest_open_price(self) -> Decimal | None:
        return min((p for p, n in self.open_prices.items() if n > 0), default=None)

    def add(self, seat: SeatState, sign: int) -> None:
        status = seat.status
        if status == "OPEN":
            self.open += sign
            prices = self.open_prices
            left = prices[seat.price] + sign
            if left:
                prices[seat.price] = left
            else:
                del prices[seat.price]
        elif status == "HELD":
            self.held += sign
        elif status == "SOLD":
            self.sold += sign
        else:
            raise ValueError(f"unknown seat status {status!r}")


@dataclass
class Availability:
    """The newest state of every seat and, kept in step, the counts per section and event."""

    seats: dict[SeatKey, SeatState] = field(default_factory=dict)
    sections: dict[SectionKey, SectionCounts] = field(default_factory=dict)
    events: dict[int, SectionCounts] = field(default_factory=dict)
    # Deleted seats, oldest delete first (a dict keeps insertion order), at most deleted_limit.
    deleted: dict[SeatKey, Deleted] = field(default_factory=dict)
    deleted_limit: int = DELETED_LIMIT

    def forget_delete(self, key: SeatKey) -> Deleted | None:
        return self.deleted.pop(key, None) if self.deleted else None

    def remember_delete(self, key: SeatKey, gone: Deleted | None) -> None:
        """Remember (or, with None, forget) a seat's delete; the oldest are dropped past the
        limit."""
        if gone is None:
            self.deleted.pop(key, None)
            return
        self.deleted.pop(key, None)  # re-inserted at the end: the newest delete
        self.deleted[key] = gone
        while len(self.deleted) > self.deleted_limit:
            del self.deleted[next(iter(self.deleted))]

    def seats_of(self, event_ids: set[int] | None = None) -> list[SeatKey]:
        """The keys of the seats known, of the given events (all when None)."""
        return [k for k in self.seats if event_ids is None or k[0] in event_ids]

    def drop_events(self, keep: Callable[[int], bool]) -> int:
        """Forget every event for which keep(event_id) is false: its seats, remembered deletes
        and counts (a partition revoked from this processor); how many seats went."""
        before = len(self.seats)
        self.seats = {k: v for k, v in self.seats.items() if keep(k[0])}
        self.deleted = {k: v for k, v in self.deleted.items() if keep(k[0])}
        self.sections = {k: v for k, v in self.sections.items() if keep(k[0])}
        self.events = {k: v for k, v in self.events.items() if keep(k)}
        return before - len(self.seats)

    def split(self, keep: Callable[[int], bool]) -> Availability:
        """The events for which keep(event_id) is true, as an Availability of their own (sharing
        the states and counts: the caller drops them here or uses one of the two)."""
        return Availability(
            seats={k: v for k, v in self.seats.items() if keep(k[0])},
            sections={k: v for k, v in self.sections.items() if keep(k[0])},
            events={k: v for k, v in self.events.items() if keep(k)},
            deleted={k: v for k, v in self.deleted.items() if keep(k[0])},
            deleted_limit=self.deleted_limit)

    def absorb(self, other: Availability) -> None:
        """Take over other's events, which must not be among this one's (partitions assigned
        to this processor: an event is in one partition)."""
        self.seats.update(other.seats)
        self.sections.update(other.sections)
        self.events.update(other.events)
        self.deleted.update(other.deleted)

    def put(self, key: SeatKey, new: SeatState | None) -> SeatState | None:
        """Replace a seat's state (None removes it); returns the previous state, for undo."""
        previous = self.seats.pop(key, None) if new is None else self.seats.get(key)
        if previous is not None:
            self._count(key[0], previous, -1)
        if new is not None:
            self.seats[key] = new
            self._count(key[0], new, +1)
        return previous

    def _count(self, event_id: int, seat: SeatState, sign: int) -> None:
        section = (event_id, seat.section_code, seat.price_level_id)
        counts = self.sections.get(section)
        if counts is None:
            counts = self.sections[section] = SectionCounts()
        counts.add(seat, sign)
        totals = self.events.get(event_id)
        if totals is None:
            totals = self.events[event_id] = SectionCounts()
        totals.add(seat, sign)

    def section_value(self, key: SectionKey, *, as_of_ms: int,
                      committed_at_ms: int) -> dict[str, Any]:
        counts = self.sections.get(key, SectionCounts())
        event_id, section_code, price_level_id = key
        return {
            "event_id": event_id, "section_code": section_code, "price_level_id": price_level_id,
            "open": counts.open, "held": counts.held, "sold": counts.sold,
            "lowest_open_price": counts.lowest_open_price(),
            "as_of": as_of_ms, "source_committed_at": committed_at_ms,
        }

    def event_value(self, event_id: int, *, as_of_ms: int, committed_at_ms: int) -> dict[str, Any]:
        counts = self.events.get(event_id, SectionCounts())
        return {
            "event_id": event_id, "open": counts.open, "held": counts.held, "sold": counts.sold,
            "total": counts.total, "as_of": as_of_ms, "source_committed_at": committed_at_ms,
        }
