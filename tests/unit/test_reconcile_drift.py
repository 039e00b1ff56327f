"""Drift or in flight: steady_differences against random histories of a sale.

The model is the one reconcile_events relies on. A history is a list of commits; attempt k
reads the database at two moments (before and after the topics), and each topic shows the
database as of its own moment, no earlier than attempt k-1's second read (the wait between
attempts is longer than the processor's lag) and no later than attempt k's second read
(nothing is published before it is committed). A seat's row is inserted or deleted at most
once in a history: the rule assumes no row is deleted and created again within one wait.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.reconcile import (
    Attempt,
    EventState,
    Reconciliation,
    SeatTruth,
    SectionPrice,
    steady_differences,
)

pytestmark = pytest.mark.unit

OPEN, HELD, SOLD = "OPEN", "HELD", "SOLD"
KEYS: list[SectionPrice] = [("101", 1), ("101", 2), ("102", 1)]
DRIFT_SEAT = 0  # the seat, or the seats of KEYS[0], that the drift tests corrupt

Row = tuple[str, int]  # status, version
Seats = dict[int, Row]


@dataclass(frozen=True)
class History:
    initial: Seats
    keys: dict[int, SectionPrice]
    commits: list[tuple[int, str | None]]  # seat, its new status (None: deleted)

    def at(self, moment: int) -> Seats:
        """The seats once the first `moment` commits are applied."""
        seats = dict(self.initial)
        for seat_id, status in self.commits[:moment]:
            if status is None:
                seats.pop(seat_id, None)
            else:
                seats[seat_id] = (status, seats[seat_id][1] + 1 if seat_id in seats else 1)
        return seats


@st.composite
def histories(draw: st.DrawFn, *, statuses: tuple[str, ...] = (OPEN, HELD, SOLD),
              quiet_key: bool = False) -> History:
    """Seats 1..n in random sections, with holds, sales, releases, inserts and deletes.

    quiet_key: the seats of KEYS[0] never change (the others still do).
    """
    n = draw(st.integers(1, 8))
    keys = {s: draw(st.sampled_from(KEYS)) for s in range(1, n + 1)}
    initial = {s: (draw(st.sampled_from(statuses)), draw(st.integers(1, 5)))
               for s in keys if draw(st.booleans()) or draw(st.booleans())}
    raw = draw(st.lists(st.tuples(st.integers(1, n), st.sampled_from((*statuses, None))),
                        max_size=40))
    commits: list[tuple[int, str | None]] = []
    present, born_or_died = set(initial), set()
    for seat_id, status in raw:
        if quiet_key and keys[seat_id] == KEYS[0]:
            continue
        if (seat_id in present) != (status is not None):  # an insert or a delete
            if seat_id in born_or_died:
                continue
            born_or_died.add(seat_id)
            if status is None:
                present.discard(seat_id)
            else:
                present.add(seat_id)
        elif status is None:
            continue  # deleting a seat that is not there
        commits.append((seat_id, status))
    return History(initial, keys, commits)


@dataclass(frozen=True)
class Reads:
    before: int
    seats: int  # the seat topic's moment
    sections: int
    totals: int
    after: int


@st.composite
def schedules(draw: st.DrawFn, history: History) -> list[Reads]:
    """2 to 4 attempts' moments, in the order reconcile_events reads."""
    end = len(history.commits)
    marks = sorted(draw(st.lists(st.integers(0, end), min_size=4, max_size=8)))
    marks = marks[:len(marks) // 2 * 2]
    out, floor = [], 0
    for before, after in zip(marks[::2], marks[1::2], strict=True):
        seats, sections, totals = (draw(st.integers(floor, after)) for _ in range(3))
        out.append(Reads(before, seats, sections, totals, after))
        floor = after
    return out


def database(history: History, moment: int) -> EventState:
    seats = history.at(moment)
    state = EventState()
    for seat_id, (status, version) in seats.items():
        key = history.keys[seat_id]
        state.seats[seat_id] = SeatTruth(status, version)
        state.seat_sections[seat_id] = key
        counts = state.sections.setdefault(key, {})
        counts[status] = counts.get(status, 0) + 1
        state.totals[status] = state.totals.get(status, 0) + 1
    return state


def published(history: History, reads: Reads) -> EventState:
    """What the topics show: each topic the database as of its own moment, read one by one."""
    return EventState(database(history, reads.seats).seats,
                      database(history, reads.sections).sections,
                      database(history, reads.totals).totals)


def attempts(history: History, schedule: list[Reads]) -> list[Attempt]:
    return [Attempt(database(history, r.before), published(history, r), database(history, r.after))
            for r in schedule]


def judged(runs: list[Attempt]) -> list[Reconciliation]:
    """steady_differences of every attempt after the first, as reconcile_events does."""
    return [steady_differences(1, earlier, now) for earlier, now in itertools.pairwise(runs)]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_changes_in_flight_are_never_reported(data: st.DataObject) -> None:
    history = data.draw(histories())
    runs = attempts(history, data.draw(schedules(history)))
    for result in judged(runs):
        assert result.passed, result.report()


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(["missing", "lost", "wrong"]))
def test_a_steady_wrong_seat_among_moving_seats_is_reported(data: st.DataObject, how: str) -> None:
    history = data.draw(histories())
    # The drift seat changes in the database like the others (never deleted), but its
    # publications are lost, or each of them carries the wrong status.
    drift_updates = data.draw(st.lists(st.tuples(st.integers(0, len(history.commits)),
                                                 st.sampled_from((OPEN, HELD, SOLD)))))
    commits = list(history.commits)
    for at, status in sorted(drift_updates, reverse=True):
        commits.insert(at, (DRIFT_SEAT, status))
    history = History({**history.initial, DRIFT_SEAT: (SOLD, 2)},
                      {**history.keys, DRIFT_SEAT: KEYS[0]}, commits)
    schedule = data.draw(schedules(history))
    runs = []
    for run, reads in zip(attempts(history, schedule), schedule, strict=True):
        seats = run.published.seats
        if how == "missing":
            del seats[DRIFT_SEAT]
        elif how == "lost":  # nothing after version 1, which the database left before the sale
            seats[DRIFT_SEAT] = SeatTruth(data.draw(st.sampled_from((OPEN, HELD, SOLD))), 1)
        else:  # the version the database had when read, with another status
            status, version = history.at(reads.before)[DRIFT_SEAT]
            seats[DRIFT_SEAT] = SeatTruth(HELD if status != HELD else OPEN, version)
        runs.append(run)
    for result in judged(runs):
        assert [d.seat_id for d in result.seat_differences] == [DRIFT_SEAT], result.report()
        assert result.count_differences == [], result.report()


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_count_gap_that_persists_while_other_counts_move_is_reported(data: st.DataObject) -> None:
    # Holds and releases move the other sections' counts and the event's totals; a sold seat of
    # KEYS[0], a section nobody touches, is counted open there and in the totals.
    history = data.draw(histories(statuses=(OPEN, HELD), quiet_key=True))
    sold = list(range(100, 100 + data.draw(st.integers(1, 3))))
    history = History({**history.initial, **{s: (SOLD, 2) for s in sold}},
                      {**history.keys, **dict.fromkeys(sold, KEYS[0])}, history.commits)
    runs = attempts(history, data.draw(schedules(history)))
    for run in runs:
        for counts in (run.published.sections[KEYS[0]], run.published.totals):
            counts[SOLD] -= 1
            counts[OPEN] = counts.get(OPEN, 0) + 1
    for result in judged(runs):
        assert [d.what for d in result.count_differences] == ["section 101 level 1", "event"], \
            result.report()
        assert result.seat_differences == [], result.report()
