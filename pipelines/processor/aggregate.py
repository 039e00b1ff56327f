"""Seat, section and event availability as state, kept exact change by change (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipelines.processor.core import SeatState

__all__ = ["Availability", "SeatKey", "SectionCounts", "SectionKey"]

SeatKey = tuple[int, int]  # (event_id, seat_id)
SectionKey = tuple[int, str, int]  # (event_id, section_code, price_level_id)


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
