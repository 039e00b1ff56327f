"""The stadium layout, events and price levels the seed writes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.host.venue import (
    PRICE_ZONES,
    event_plans,
    price_levels_for_event,
    row_label,
    seat_plans,
    stadium_plan,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("index", "numeric", "label"),
    [(1, False, "A"), (8, False, "H"), (9, False, "J"), (13, False, "N"), (24, False, "Z"),
     (25, False, "AA"), (48, False, "ZZ"), (49, False, "49"), (7, True, "7")],
)
def test_row_label_skips_i_and_o(index: int, numeric: bool, label: str) -> None:
    assert row_label(index, numeric=numeric) == label


def test_row_label_rejects_zero() -> None:
    with pytest.raises(ValueError, match="row index"):
        row_label(0)


@given(st.integers(min_value=1, max_value=48))
def test_row_labels_are_distinct(index: int) -> None:
    labels = {row_label(i) for i in range(1, index + 1)}
    assert len(labels) == index
    assert not any(c in "IO" for label in labels for c in label)


def test_default_stadium_has_fifty_thousand_seats_in_three_bowls() -> None:
    plan = stadium_plan(50_000)
    assert 50_000 <= plan.seat_count < 52_000
    assert {s.tier for s in plan.sections} == {"lower", "club", "upper"}
    assert {s.price_zone for s in plan.sections} == set(PRICE_ZONES)
    codes = [s.code for s in plan.sections]
    assert len(codes) == len(set(codes))


@given(st.integers(min_value=1, max_value=150_000))
def test_stadium_reaches_its_target_without_overshooting_much(target: int) -> None:
    plan = stadium_plan(target)
    assert plan.seat_count >= target
    # Growth adds one row to every section of one tier at a time.
    widest_step = max(len([t for t in plan.sections if t.tier == s.tier]) * max(s.row_widths)
                      for s in plan.sections)
    assert plan.seat_count - target < max(widest_step, stadium_plan(1).seat_count)


def test_seat_plans_cover_each_section_once() -> None:
    plan = stadium_plan(5_000)
    seats = [seat for section in plan.sections for seat in seat_plans(section)]
    assert len(seats) == plan.seat_count
    keys = {(s.section_code, s.row_index, s.seat_number) for s in seats}
    assert len(keys) == len(seats)
    upper = next(s for s in seats if s.section_code.startswith("3"))
    assert upper.row_label == "1"
    lower = next(s for s in seats if s.section_code.startswith("1"))
    assert lower.row_label == "A" and lower.seat_number == 1


def test_rows_widen_going_up() -> None:
    section = stadium_plan(50_000).sections[0]
    assert list(section.row_widths) == sorted(section.row_widths)
    assert section.row_widths[-1] > section.row_widths[0]


def test_event_plans_are_weekly_named_and_on_sale() -> None:
    plans = event_plans(10, now=NOW)
    assert len({p.name for p in plans}) == 10
    starts = [p.starts_at for p in plans]
    assert starts == sorted(starts)
    assert all(p.on_sale_at == NOW < p.starts_at for p in plans)
    assert all(p.status == "on_sale" for p in plans)
    assert (starts[1] - starts[0]).days == 7


def test_event_plans_are_stable_prefixes() -> None:
    # Seeding 5 events after 3 must add two, not rename the first three.
    assert [p.name for p in event_plans(3, now=NOW)] == [
        p.name for p in event_plans(5, now=NOW)[:3]
    ]


@given(st.integers(min_value=0, max_value=50))
def test_price_levels_cover_every_zone_in_cents(index: int) -> None:
    levels = price_levels_for_event(index)
    assert [lv.code for lv in levels] == list(PRICE_ZONES)
    for level in levels:
        assert level.price > 0
        assert level.price == level.price.quantize(Decimal("0.01"))
    by_code = {lv.code: lv.price for lv in levels}
    assert by_code["CLUB"] > by_code["LS"] > by_code["LE"] > by_code["US"] > by_code["UE"]
