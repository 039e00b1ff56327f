from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.processor.aggregate import Availability
from pipelines.processor.core import SeatChange, SeatState
from pipelines.processor.reference import EventRef, PriceLevelRef, Reference, SeatRef, SectionRef
from pipelines.processor.step import Applied, Duplicate, Unresolved, Violation, apply_change

pytestmark = pytest.mark.unit

SEATS = range(1, 9)
REFERENCE = Reference(
    events={1: EventRef("e", "on_sale")},
    sections={10: SectionRef("101"), 20: SectionRef("102")},
    seats={s: SeatRef(10 if s % 2 else 20, "A", s) for s in SEATS},
    price_levels={1: PriceLevelRef(1, "P1", Decimal("50.00")), 2: PriceLevelRef(1, "P2", Decimal("80.00"))},
)
NEXT = {"OPEN": ["HELD"], "HELD": ["OPEN", "SOLD"], "SOLD": ["OPEN"]}


def change(seat: int, status: str, version: int, *, level: int = 1, op: str = "u") -> SeatChange:
    from datetime import UTC, datetime

    expires = datetime(2030, 1, 1, tzinfo=UTC) if status == "HELD" else None
    price = Decimal("50.00") if level == 1 else Decimal("80.00")
    return SeatChange(op, 1, seat, None if op == "d" else status, level, price, expires, version,
                      None, 1_000, False)  # type: ignore[arg-type]


def test_counts_and_lowest_open_price_follow_each_change() -> None:
    availability = Availability()
    for seat, level in [(1, 1), (3, 2), (5, 2)]:
        apply_change(change(seat, "OPEN", 1, level=level), availability, REFERENCE, published_at_ms=0)
    section = availability.sections[(1, "101", 2)]
    assert (section.open, section.lowest_open_price()) == (2, Decimal("80.00"))
    apply_change(change(1, "HELD", 2), availability, REFERENCE, published_at_ms=0)
    assert availability.sections[(1, "101", 1)].lowest_open_price() is None
    assert availability.event_value(1, as_of_ms=5, committed_at_ms=4) == {
        "event_id": 1, "open": 2, "held": 1, "sold": 0, "total": 3, "as_of": 5,
        "source_committed_at": 4}


def test_older_or_repeated_versions_are_duplicates() -> None:
    availability = Availability()
    apply_change(change(1, "OPEN", 1), availability, REFERENCE, published_at_ms=0)
    apply_change(change(1, "HELD", 2), availability, REFERENCE, published_at_ms=0)
    assert isinstance(apply_change(change(1, "HELD", 2), availability, REFERENCE,
                                   published_at_ms=0), Duplicate)
    assert isinstance(apply_change(change(1, "OPEN", 1), availability, REFERENCE,
                                   published_at_ms=0), Duplicate)
    assert availability.seats[(1, 1)].status == "HELD"


def test_illegal_transition_and_unknown_seat_change_nothing() -> None:
    availability = Availability()
    apply_change(change(1, "OPEN", 1), availability, REFERENCE, published_at_ms=0)
    assert isinstance(apply_change(change(1, "SOLD", 2), availability, REFERENCE,
                                   published_at_ms=0), Violation)
    assert isinstance(apply_change(change(99, "OPEN", 1), availability, REFERENCE,
                                   published_at_ms=0), Unresolved)
    assert availability.seats == {(1, 1): SeatState(1, "OPEN", "101", 1, Decimal("50.00"))}


def test_delete_removes_the_seat_and_a_repeated_delete_is_a_duplicate() -> None:
    availability = Availability()
    apply_change(change(1, "OPEN", 1), availability, REFERENCE, published_at_ms=0)
    verdict = apply_change(change(1, "OPEN", 1, op="d"), availability, REFERENCE, published_at_ms=0)
    assert isinstance(verdict, Applied) and verdict.record_value is None
    assert isinstance(apply_change(change(1, "OPEN", 1, op="d"), availability, REFERENCE,
                                   published_at_ms=0), Duplicate)
    assert availability.events[1].total == 0


@st.composite
def histories(draw: st.DrawFn) -> list[SeatChange]:
    """Legal histories of several seats, interleaved, with redeliveries and stale copies."""
    out: list[SeatChange] = []
    status = dict.fromkeys(SEATS, "OPEN")
    version = dict.fromkeys(SEATS, 1)
    for seat in SEATS:
        out.append(change(seat, "OPEN", 1, level=1 + seat % 2))
    for _ in range(draw(st.integers(0, 60))):
        seat = draw(st.sampled_from(list(SEATS)))
        status[seat] = draw(st.sampled_from(NEXT[status[seat]]))
        version[seat] += 1
        new = change(seat, status[seat], version[seat], level=1 + seat % 2)
        out.append(new)
        if draw(st.booleans()):  # at-least-once: the same change again, maybe later
            out.insert(draw(st.integers(len(out) - 1, len(out))), new)
    return out


@settings(max_examples=200)
@given(histories())
def test_replaying_a_history_gives_the_counts_of_the_final_state(history: list[SeatChange]) -> None:
    availability = Availability()
    for c in history:
        verdict = apply_change(c, availability, REFERENCE, published_at_ms=0)
        assert not isinstance(verdict, Violation | Unresolved)
    final: dict[int, SeatChange] = {}
    for c in history:
        if c.version > final.get(c.seat_id, c).version or c.seat_id not in final:
            final[c.seat_id] = c
    expected: dict[tuple[int, str, int], Counter[str]] = {}
    for c in final.values():
        section = REFERENCE.sections[REFERENCE.seats[c.seat_id].section_id].code
        expected.setdefault((1, section, c.price_level_id or 0), Counter())[c.status or ""] += 1
    got = {k: Counter({"OPEN": v.open, "HELD": v.held, "SOLD": v.sold}) for k, v in
           availability.sections.items()}
    assert {k: +v for k, v in got.items()} == expected
    assert availability.events[1].total == len(SEATS)


@given(histories(), st.integers(0, 200))
def test_undo_restores_the_exact_state(history: list[SeatChange], cut: int) -> None:
    """What an aborted transaction relies on: putting back `previous` in reverse undoes a batch."""
    availability = Availability()
    cut = min(cut, len(history))
    for c in history[:cut]:
        apply_change(c, availability, REFERENCE, published_at_ms=0)
    snapshot = (dict(availability.seats),
                {k: (v.open, v.held, v.sold, +v.open_prices) for k, v in availability.sections.items()})
    undo = []
    for c in history[cut:]:
        verdict = apply_change(c, availability, REFERENCE, published_at_ms=0)
        if isinstance(verdict, Applied):
            undo.append((verdict.key, verdict.previous))
    for key, previous in reversed(undo):
        availability.put(key, previous)
    assert availability.seats == snapshot[0]
    assert {k: (v.open, v.held, v.sold, +v.open_prices) for k, v in availability.sections.items()
            if v.total or k in snapshot[1]} == snapshot[1]


def test_a_snapshot_row_of_the_seen_version_is_published_again_but_never_an_older_one() -> None:
    availability = Availability()
    apply_change(change(1, "OPEN", 1), availability, REFERENCE, published_at_ms=0)
    apply_change(change(1, "HELD", 2), availability, REFERENCE, published_at_ms=0)
    again = change(1, "HELD", 2)._replace(op="r", snapshot=True)
    assert isinstance(apply_change(again, availability, REFERENCE, published_at_ms=0), Applied)
    older = change(1, "OPEN", 1)._replace(op="r", snapshot=True)
    assert isinstance(apply_change(older, availability, REFERENCE, published_at_ms=0), Duplicate)
    assert availability.sections[(1, "101", 1)].held == 1
