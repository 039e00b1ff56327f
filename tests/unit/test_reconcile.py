"""Reconciliation's pure comparisons: seat by seat, then the counts, and the report."""

from __future__ import annotations

import pytest

from pipelines import reconcile
from pipelines.reconcile import (
    Attempt,
    CountDifference,
    EventState,
    SeatDifference,
    SeatTruth,
    SectionPrice,
    count_differences,
    reconcile_event,
    reconcile_events,
    seat_differences,
    steady_differences,
)
from pipelines.settings import Settings

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


A, B = ("101", 1), ("102", 1)


def db(seats: dict[int, tuple[str, int, SectionPrice]]) -> EventState:
    """The database's side: seats with their sections, counts added up from them."""
    state = EventState()
    for seat_id, (status, version, key) in seats.items():
        state.seats[seat_id] = truth(status, version)
        state.seat_sections[seat_id] = key
        counts = state.sections.setdefault(key, {})
        counts[status] = counts.get(status, 0) + 1
        state.totals[status] = state.totals.get(status, 0) + 1
    return state


def topics(seats: dict[int, tuple[str, int, SectionPrice]], **counts_of: dict) -> EventState:
    """The topics' side: as the seats say, unless `sections` or `totals` are given."""
    state = db(seats)
    return EventState(state.seats, counts_of.get("sections", state.sections),
                      counts_of.get("totals", state.totals))


def unmoved(before: EventState, published: EventState) -> Attempt:
    return Attempt(before, published, before)


def test_a_difference_that_stays_the_same_is_steady_and_one_in_flight_is_not() -> None:
    quiet = {1: (SOLD, 2, A), 2: (HELD, 5, A)}
    earlier = unmoved(db(quiet), topics({1: (OPEN, 1, A), 2: (OPEN, 4, A)}))
    # Seat 2 moved on and the topics followed it to a version as new as the earlier read.
    now = Attempt(db({**quiet, 2: (SOLD, 6, A)}), topics({1: (OPEN, 1, A), 2: (HELD, 5, A)}),
                  db({**quiet, 2: (SOLD, 6, A)}))
    kept = steady_differences(1, earlier, now)
    assert kept.seat_differences == [SeatDifference(1, "behind", truth(SOLD, 2), truth(OPEN, 1))]


def test_a_seat_that_moves_but_is_published_wrong_every_time_is_steady() -> None:
    earlier = unmoved(db({1: (SOLD, 5, A)}), topics({1: (HELD, 5, A)}))
    now = unmoved(db({1: (OPEN, 6, A)}), topics({1: (HELD, 6, A)}))
    assert [d.kind for d in steady_differences(1, earlier, now).seat_differences] == ["wrong"]


def test_a_seat_left_behind_a_version_the_database_had_a_wait_ago_is_steady() -> None:
    earlier = Attempt(db({1: (HELD, 3, A)}), topics({1: (OPEN, 1, A)}), db({1: (SOLD, 4, A)}))
    now = unmoved(db({1: (OPEN, 5, A)}), topics({1: (HELD, 3, A)}))
    assert [d.seat_id for d in steady_differences(1, earlier, now).seat_differences] == [1]


def test_a_missing_seat_is_steady_even_while_its_row_changes() -> None:
    earlier = unmoved(db({1: (OPEN, 1, A)}), topics({}))
    now = unmoved(db({1: (HELD, 2, A)}), topics({}))
    assert [d.kind for d in steady_differences(1, earlier, now).seat_differences] == ["missing"]


@pytest.mark.parametrize(
    ("earlier_after", "before", "after", "published"),
    [
        # Behind, but at the version the database had at the earlier attempt: in flight.
        ({1: (HELD, 4, A)}, {1: (SOLD, 5, A)}, {1: (SOLD, 5, A)}, {1: (HELD, 4, A)}),
        # Deleted between the two reads of this attempt, and the delete already published.
        ({1: (HELD, 4, A)}, {1: (HELD, 4, A)}, {}, {}),
        # Deleted and inserted again: versions restart, so they order nothing.
        ({1: (HELD, 7, A)}, {1: (OPEN, 1, A)}, {1: (HELD, 2, A)}, {}),
        # Inserted just now, not yet published.
        ({}, {1: (OPEN, 1, A)}, {1: (OPEN, 1, A)}, {}),
    ],
)
def test_seats_that_moved_within_the_window_may_be_in_flight(
        earlier_after: dict, before: dict, after: dict, published: dict) -> None:
    earlier = Attempt(db({1: (OPEN, 1, A)}), topics({}), db(earlier_after))
    now = Attempt(db(before), topics(published), db(after))
    assert steady_differences(1, earlier, now).seat_differences == []


def test_a_difference_first_seen_at_the_last_attempt_is_not_reported() -> None:
    seats = {1: (SOLD, 2, A)}
    earlier = unmoved(db(seats), topics(seats))
    now = unmoved(db(seats), topics({1: (OPEN, 2, A)}))
    assert steady_differences(1, earlier, now).passed


def test_the_same_count_gap_from_a_change_in_flight_at_each_attempt_is_not_reported() -> None:
    # A steady trickle of holds: one is in flight at each attempt, always a different seat,
    # so the section and the event show the same gap twice without anything being wrong.
    seats = {i: (OPEN, 1, A) for i in range(1, 5)}
    first = {**seats, 1: (HELD, 2, A)}
    second = {**first, 2: (HELD, 2, A)}
    earlier = unmoved(db(first), topics(seats))
    now = unmoved(db(second), topics(first))
    assert (count_differences(earlier.before, earlier.published)
            == [CountDifference("section 101 level 1", {HELD: 1, OPEN: 3}, {OPEN: 4}),
                CountDifference("event", {HELD: 1, OPEN: 3}, {OPEN: 4})])
    assert [(d.database, d.published) for d in count_differences(now.before, now.published)] == [
        ({HELD: 2, OPEN: 2}, {HELD: 1, OPEN: 3})] * 2
    assert steady_differences(1, earlier, now).passed


def test_a_count_gap_is_steady_while_the_seats_around_it_move() -> None:
    # Section A's counts lost a sale (one sold seat counted open), and so did the event's
    # totals; section B is busy with holds and releases, which move the totals too.
    quiet = {1: (SOLD, 3, A), 2: (SOLD, 3, A), 3: (OPEN, 1, A)}

    def attempt(busy: dict) -> Attempt:
        seats = {**quiet, **busy}
        right = db(seats)
        totals = {**right.totals, SOLD: right.totals[SOLD] - 1, OPEN: right.totals[OPEN] + 1}
        return unmoved(right, topics(seats, sections={**right.sections, A: {SOLD: 1, OPEN: 2}},
                                      totals=totals))

    earlier = attempt({4: (HELD, 2, B), 5: (OPEN, 1, B)})
    now = attempt({4: (HELD, 2, B), 5: (HELD, 2, B)})
    assert earlier.published.totals != now.published.totals
    kept = steady_differences(1, earlier, now)
    assert [d.what for d in kept.count_differences] == ["section 101 level 1", "event"]
    assert kept.seat_differences == []


def test_a_count_gap_in_a_busy_section_is_seen_when_the_moving_seats_cannot_explain_it() -> None:
    sold = {i: (SOLD, 2, A) for i in range(1, 4)}
    earlier = unmoved(db({**sold, 9: (OPEN, 1, A)}),
                      topics({**sold, 9: (OPEN, 1, A)}, sections={A: {SOLD: 2, OPEN: 2}}))
    moved = {**sold, 9: (HELD, 2, A)}
    # Seat 9 is in flight; even so, only two of the three unmoved sold seats are counted.
    now = unmoved(db(moved), topics(moved, sections={A: {SOLD: 2, HELD: 1, OPEN: 1}}))
    assert [d.what for d in steady_differences(1, earlier, now).count_differences] == [
        "section 101 level 1"]


def test_a_seat_dropped_from_the_counts_is_seen_though_it_moves() -> None:
    # Seat 9 moves, so its status in the counts is anyone's guess, but it exists all along and
    # must be counted in some status.
    sold = {1: (SOLD, 2, A), 2: (SOLD, 2, A)}
    earlier = unmoved(db({**sold, 9: (OPEN, 1, A)}), topics(sold))
    now = unmoved(db({**sold, 9: (HELD, 2, A)}), topics({**sold, 9: (HELD, 2, A)},
                                                        sections={A: {SOLD: 2}}, totals={SOLD: 2}))
    assert [d.what for d in steady_differences(1, earlier, now).count_differences] == [
        "section 101 level 1", "event"]


def test_counts_without_their_seats_are_steady_only_when_neither_side_moved() -> None:
    def attempt(database: dict, published: dict) -> Attempt:
        return unmoved(state({A: database}, database), state({A: published}, published))

    earlier = attempt({OPEN: 9}, {OPEN: 10})
    assert steady_differences(1, earlier, attempt({OPEN: 9}, {OPEN: 10})).count_differences == [
        CountDifference("section 101 level 1", {OPEN: 9}, {OPEN: 10}),
        CountDifference("event", {OPEN: 9}, {OPEN: 10})]
    assert steady_differences(1, earlier, attempt({OPEN: 8}, {OPEN: 9})).passed


class FakeReads:
    """db_state and published_state over scripted states: each read takes the next one."""

    def __init__(self, database: list[EventState], published: list[EventState]) -> None:
        self.database, self.published = database, published
        self.calls: list[str] = []

    def db_state(self, _settings: Settings, event_ids: list[int]) -> dict[int, EventState]:
        self.calls.append("database")
        return dict.fromkeys(event_ids, self.database.pop(0))

    def published_state(self, _settings: Settings, event_ids: list[int]) -> dict[int, EventState]:
        self.calls.append("topics")
        return dict.fromkeys(event_ids, self.published.pop(0))


def test_reconcile_events_reads_the_database_around_the_topics_and_keeps_steady_drift(
        monkeypatch: pytest.MonkeyPatch) -> None:
    steady, in_flight = {1: (SOLD, 2, A)}, {2: (HELD, 4, A)}
    reads = FakeReads(
        [db({**steady, 2: (OPEN, 3, A)}), db({**steady, 2: (HELD, 4, A)}),
         db({**steady, **in_flight}), db({**steady, **in_flight})],
        [topics({1: (OPEN, 1, A), 2: (OPEN, 2, A)}), topics({1: (OPEN, 1, A), **in_flight})])
    monkeypatch.setattr(reconcile, "db_state", reads.db_state)
    monkeypatch.setattr(reconcile, "published_state", reads.published_state)
    monkeypatch.setattr(reconcile.time, "sleep", lambda _s: None)
    result = reconcile_events(Settings.model_construct(), [7], attempts=2)[7]
    assert reads.calls == ["database", "topics", "database"] * 2
    assert [d.seat_id for d in result.seat_differences] == [1]
    assert [d.what for d in result.count_differences] == ["section 101 level 1", "event"]


def test_one_attempt_reports_every_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = FakeReads([db({1: (SOLD, 2, A)})], [topics({1: (OPEN, 1, A)})])
    monkeypatch.setattr(reconcile, "db_state", reads.db_state)
    monkeypatch.setattr(reconcile, "published_state", reads.published_state)
    result = reconcile_events(Settings.model_construct(), [7], attempts=1)[7]
    assert reads.calls == ["database", "topics"]
    assert [d.kind for d in result.seat_differences] == ["behind"]
