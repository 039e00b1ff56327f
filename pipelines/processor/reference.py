"""Reference data for enrichment, kept current from the reference tables' change events (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

__all__ = ["REFERENCE_TABLES", "EventRef", "PriceLevelRef", "Reference", "SeatRef", "SectionRef"]

REFERENCE_TABLES = ("events", "sections", "seats", "price_levels")


# Immutable named tuples: one per seat is loaded at every start, and a tuple is the cheapest.
class EventRef(NamedTuple):
    name: str
    status: str  # scheduled / on_sale / sold_out / cancelled


class SectionRef(NamedTuple):
    code: str


class SeatRef(NamedTuple):
    section_id: int
    row_label: str
    seat_number: int


class PriceLevelRef(NamedTuple):
    event_id: int
    code: str
    price: Decimal


@dataclass
class Reference:
    """Events, sections, seats and price levels by id, as the ticketing host has them."""

    events: dict[int, EventRef] = field(default_factory=dict)
    sections: dict[int, SectionRef] = field(default_factory=dict)
    seats: dict[int, SeatRef] = field(default_factory=dict)
    price_levels: dict[int, PriceLevelRef] = field(default_factory=dict)

    def apply(self, table: str, op: str, before: Mapping[str, Any] | None,
              after: Mapping[str, Any] | None) -> None:
        """Fold one change event of a reference table in."""
        row = before if op == "d" else after
        if row is None:
            return
        if table == "events":
            _put(self.events, row["event_id"], op, lambda: EventRef(row["name"], row["status"]))
        elif table == "sections":
            _put(self.sections, row["section_id"], op, lambda: SectionRef(row["code"]))
        elif table == "seats":
            _put(self.seats, row["seat_id"], op,
                 lambda: SeatRef(row["section_id"], row["row_label"], row["seat_number"]))
        elif table == "price_levels":
            _put(self.price_levels, row["price_level_id"], op,
                 lambda: PriceLevelRef(row["event_id"], row["code"], Decimal(row["price"])))

    def missing(self, event_id: int, seat_id: int, price_level_id: int | None) -> str | None:
        """What a seat change refers to that is not known (yet); None when all is known."""
        if event_id not in self.events:
            return f"event {event_id}"
        seat = self.seats.get(seat_id)
        if seat is None:
            return f"seat {seat_id}"
        if seat.section_id not in self.sections:
            return f"section {seat.section_id}"
        if price_level_id is not None and price_level_id not in self.price_levels:
            return f"price level {price_level_id}"
        return None


def _put(table: dict, key: int, op: str, make: Any) -> None:
    if op == "d":
        table.pop(key, None)
    else:
        table[key] = make()
