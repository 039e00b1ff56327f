"""Reconciliation's pure comparisons: seat by seat, then the counts, and the report."""

from __future__ import annotations

import pytest

from pipelines.reconcile import (
    CountDifference,
    EventState,
    Reconciliation,
    SeatDifference,
    SeatTruth,
    _persisting,
    count_differences,
    reconcile_event,
    seat_differences,
)

pytestmark = pytest.mark.unit

OPEN, HELD, SOLD = "OPEN", "HELD", "SOLD"


def truth(status: str, version: int) -> SeatTruth:
    return SeatTruth(status, version)


@pytest.mark.parametrize(
    ("database", "published", "kind"),
    [
        (truth(OPEN, 3), None, "missing"),
        (None, truth(OPEN, 3), "unexpected"),
        (truth(SOLD, 3), truth(OPEN, 3), "wrong"),
        (truth(SOLD, 4), truth(HELD, 3), "behind"),
    ],
)
def test_each_kind_of_seat_difference(database: SeatTruth | None, published: SeatTruth | None,
                                      kind: str) -> None:
    db = {} if database is None else {7: database}
    pub = {} if published is None else {7: published}
    assert seat_differences(db, pub) == [SeatDifference(7, kind, database, published)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("database", "published"),
    [
        (truth(OPEN, 3), truth(OPEN, 3)),  # the same
        (truth(OPEN, 3), truth(HELD, 4)),  # published a change committed after the DB was read
    ],
)
def test_agreeing_seats_are_no_difference(database: SeatTruth, published: SeatTruth) -> None:
    assert seat_differences({1: database}, {1: published}) == []


def test_seat_differences_come_sorted_by_seat() -> None:
    db = {3: truth(OPEN, 1), 1: truth(OPEN, 1), 2: truth(OPEN, 1)}
    assert [d.seat_id for d in seat_differences(db, {})] == [1, 2, 3]


def state(sections: dict, totals: dict) -> EventState:
    return EventState(seats={}, sections=sections, totals=totals)


def test_counts_compare_per_section_and_for_the_event_zeros_ignored() -> None:
    db = state({("101", 1): {OPEN: 10, HELD: 2}, ("102", 2): {SOLD: 5}}, {OPEN: 10, HELD: 2, SOLD: 5})
    pub = state({("101", 1): {OPEN: 10, HELD: 2, SOLD: 0}, ("102", 2): {SOLD: 4, OPEN: 1}},
                {OPEN: 11, HELD: 2, SOLD: 4})
    assert count_differences(db, pub) == [
        CountDifference("section 102 level 2", {SOLD: 5}, {OPEN: 1, SOLD: 4}),
        CountDifference("event", {HELD: 2, OPEN: 10, SOLD: 5}, {HELD: 2, OPEN: 11, SOLD: 4}),
    ]


def test_a_section_published_but_absent_from_the_database_is_a_difference() -> None:
    assert count_differences(state({}, {}), state({("9", 9): {OPEN: 1}}, {})) == [
        CountDifference("section 9 level 9", {}, {OPEN: 1})]


def test_reconcile_event_passes_only_when_everything_agrees_and_reports_briefly() -> None:
    seats = {i: truth(OPEN, 1) for i in range(1, 31)}
    db = EventState(seats=seats, sections={("101", 1): {OPEN: 30}}, totals={OPEN: 30})
    good = reconcile_event(5, db, EventState(dict(seats), {("101", 1): {OPEN: 30}}, {OPEN: 30}))
    assert good.passed and good.summary() == "event 5: 30 seats, in agreement"
    drifted = {**seats, 2: truth(SOLD, 1)}
    del drifted[3]
    bad = reconcile_event(5, db, EventState(drifted, {("101", 1): {OPEN: 29}}, {OPEN: 30}))
    assert not bad.passed
    assert bad.summary() == ("event 5: 30 seats; seat differences: 1 missing, 1 wrong; "
                             "count differences: 1")
    assert bad.report(limit=1).splitlines() == [
        bad.summary(),
        "  seat 2: wrong (database OPEN v1, published SOLD v1)",
        "  ... and 1 more seats",
        "  section 101 level 1: database {'OPEN': 30}, published {'OPEN': 29}",
    ]


def test_only_differences_that_persist_between_attempts_count() -> None:
    steady = SeatDifference(1, "wrong", truth(OPEN, 2), truth(SOLD, 2))
    in_flight = SeatDifference(2, "behind", truth(HELD, 5), truth(OPEN, 4))
    moved = CountDifference("event", {OPEN: 9}, {OPEN: 10})
    before = Reconciliation(1, 10, [steady, in_flight], [moved])
    now = Reconciliation(1, 10, [steady, SeatDifference(2, "behind", truth(SOLD, 6),
                                                        truth(HELD, 5))],
                         [CountDifference("event", {OPEN: 8}, {OPEN: 9})])
    kept = _persisting(now, before)
    assert kept.seat_differences == [steady] and kept.count_differences == []
    assert _persisting(now, None) is now
