"""A stadium's sections, rows and seats, its events and their price levels; pure values."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Literal

__all__ = [
    "PRICE_ZONES",
    "EventPlan",
    "PriceLevelPlan",
    "SeatPlan",
    "SectionPlan",
    "StadiumPlan",
    "event_plans",
    "price_levels_for_event",
    "row_label",
    "seat_plans",
    "stadium_plan",
]

Tier = Literal["lower", "club", "upper"]

# Price zone code -> (name, base price in dollars).
PRICE_ZONES: dict[str, tuple[str, Decimal]] = {
    "CLUB": ("Club", Decimal("245")),
    "LS": ("Lower Sideline", Decimal("165")),
    "LE": ("Lower End Zone", Decimal("115")),
    "US": ("Upper Sideline", Decimal("75")),
    "UE": ("Upper End Zone", Decimal("49")),
}

# Letters a row may carry: I and O are skipped, as on real tickets (they read as 1 and 0).
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class _TierSpec:
    tier: Tier
    first_code: int
    sections: int
    first_row_width: int
    # Rows get one seat wider every `widen_every` rows, going up the bowl.
    widen_every: int
    numeric_rows: bool


_TIERS = (
    _TierSpec("lower", 101, 28, 20, 3, numeric_rows=False),
    _TierSpec("club", 201, 16, 18, 4, numeric_rows=False),
    _TierSpec("upper", 301, 32, 24, 4, numeric_rows=True),
)
# Which tier gains a row next while the stadium grows to its target size.
_GROWTH_ORDER: tuple[Tier, ...] = ("lower", "upper", "lower", "upper", "club")


@dataclass(frozen=True, slots=True)
class SectionPlan:
    code: str
    name: str
    tier: Tier
    price_zone: str
    # Seats in each row, front row first.
    row_widths: tuple[int, ...]
    numeric_rows: bool

    @property
    def seat_count(self) -> int:
        return sum(self.row_widths)


@dataclass(frozen=True, slots=True)
class StadiumPlan:
    name: str
    city: str
    sections: tuple[SectionPlan, ...]

    @property
    def seat_count(self) -> int:
        return sum(s.seat_count for s in self.sections)


@dataclass(frozen=True, slots=True)
class SeatPlan:
    section_code: str
    row_label: str
    row_index: int
    seat_number: int


@dataclass(frozen=True, slots=True)
class EventPlan:
    name: str
    starts_at: datetime
    on_sale_at: datetime
    status: Literal["scheduled", "on_sale"]


@dataclass(frozen=True, slots=True)
class PriceLevelPlan:
    code: str
    name: str
    price: Decimal


def row_label(index: int, *, numeric: bool = False) -> str:
    """Label of the index-th row (1-based): A..Z, then AA..ZZ, then numbers; or 1, 2, ..."""
    if index < 1:
        raise ValueError(f"row index must be >= 1, got {index}")
    if numeric:
        return str(index)
    letters = len(_ROW_LETTERS)
    if index <= letters:
        return _ROW_LETTERS[index - 1]
    if index <= 2 * letters:
        return _ROW_LETTERS[index - letters - 1] * 2
    return str(index)


def _row_widths(spec: _TierSpec, rows: int) -> tuple[int, ...]:
    return tuple(spec.first_row_width + r // spec.widen_every for r in range(rows))


def _tier_seats(spec: _TierSpec, rows: int) -> int:
    return spec.sections * sum(_row_widths(spec, rows))


def _price_zone(spec: _TierSpec, position: int) -> str:
    if spec.tier == "club":
        return "CLUB"
    # Sections run round the oval; the middle half of each long side faces midfield.
    eighth = position * 8 // spec.sections
    sideline = eighth in (1, 2, 5, 6)
    prefix = "L" if spec.tier == "lower" else "U"
    return prefix + ("S" if sideline else "E")


def stadium_plan(
    target_seats: int, *, name: str = "Seatflow Stadium", city: str = "Springfield"
) -> StadiumPlan:
    """A three-tier bowl with at least target_seats seats, grown a row at a time."""
    if target_seats < 1:
        raise ValueError(f"a stadium needs seats, got {target_seats}")
    rows: dict[Tier, int] = {spec.tier: 1 for spec in _TIERS}
    specs = {spec.tier: spec for spec in _TIERS}

    def total() -> int:
        return sum(_tier_seats(specs[t], rows[t]) for t in rows)

    for tier in itertools.cycle(_GROWTH_ORDER):
        if total() >= target_seats:
            break
        rows[tier] += 1
    sections = []
    for spec in _TIERS:
        widths = _row_widths(spec, rows[spec.tier])
        for position in range(spec.sections):
            code = str(spec.first_code + position)
            sections.append(
                SectionPlan(
                    code=code,
                    name=f"{spec.tier.title()} {code}",
                    tier=spec.tier,
                    price_zone=_price_zone(spec, position),
                    row_widths=widths,
                    numeric_rows=spec.numeric_rows,
                )
            )
    return StadiumPlan(name=name, city=city, sections=tuple(sections))


def seat_plans(section: SectionPlan) -> Iterator[SeatPlan]:
    """Every seat of a section, row by row, seat numbers from 1."""
    for row_index, width in enumerate(section.row_widths, start=1):
        label = row_label(row_index, numeric=section.numeric_rows)
        for seat_number in range(1, width + 1):
            yield SeatPlan(section.code, label, row_index, seat_number)


_OPPONENTS = (
    "Harbor Hawks",
    "Riverside Rockets",
    "Capital Foxes",
    "Mountain Miners",
    "Bayside Sharks",
    "Prairie Storm",
    "Desert Coyotes",
    "Lakeshore Loons",
)
# Demand differs by opponent; prices follow (a rivalry game costs more).
_DEMAND = (Decimal("1.00"), Decimal("1.35"), Decimal("0.85"), Decimal("1.10"), Decimal("0.95"))


def event_plans(count: int, *, now: datetime, home_team: str = "Springfield Comets") -> (
    list[EventPlan]
):
    """count home games a week apart from a fortnight after now, all on sale from now."""
    if count < 0:
        raise ValueError(f"event count must be >= 0, got {count}")
    first_day = (now + timedelta(days=14)).date()
    plans = []
    for i in range(count):
        opponent = _OPPONENTS[i % len(_OPPONENTS)]
        name = f"{home_team} vs {opponent}"
        if i >= len(_OPPONENTS):
            name += f" (game {i // len(_OPPONENTS) + 1})"
        starts_at = datetime.combine(first_day + timedelta(weeks=i), time(19, 30), now.tzinfo)
        plans.append(EventPlan(name=name, starts_at=starts_at, on_sale_at=now, status="on_sale"))
    return plans


def price_levels_for_event(event_index: int, zones: Sequence[str] | None = None) -> (
    list[PriceLevelPlan]
):
    """The event's price level per zone: the zone's base price scaled by the game's demand."""
    demand = _DEMAND[event_index % len(_DEMAND)]
    levels = []
    for code in zones if zones is not None else PRICE_ZONES:
        name, base = PRICE_ZONES[code]
        levels.append(PriceLevelPlan(code, name, (base * demand).quantize(Decimal("1.00"))))
    return levels
