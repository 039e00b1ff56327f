"""apply_newest: following the seat topic record by record (a warm standby) ends in the state a
cold start builds from each seat's last record."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.processor.aggregate import Availability, Deleted, SeatKey
from pipelines.processor.core import SeatState
from pipelines.processor.published import apply_newest

pytestmark = pytest.mark.unit

seats = st.tuples(st.integers(1, 2), st.integers(1, 4))
states = st.builds(SeatState, version=st.integers(1, 9),
                   status=st.sampled_from(["OPEN", "HELD", "SOLD"]),
                   section_code=st.sampled_from(["101", "102"]), price_level_id=st.integers(1, 2),
                   price=st.sampled_from([Decimal("50.00"), Decimal("75.50")]),
                   lsn=st.none() | st.integers(1, 10**6))
deletes = st.builds(Deleted, version=st.integers(1, 9), lsn=st.none() | st.integers(1, 10**6))
# A seat's records in publishing order: states, tombstones that remember a delete, and None
# (a tombstone without the header, or a record that could not be read).
records = st.lists(st.tuples(seats, st.none() | states | deletes), max_size=40)


def _counts(a: Availability) -> tuple[dict, dict]:
    """The counts that are not all zero (following leaves emptied sections behind)."""
    def nonzero(d: dict) -> dict:
        return {k: (c.open, c.held, c.sold, +c.open_prices) for k, c in d.items()
                if c.open or c.held or c.sold}
    return nonzero(a.sections), nonzero(a.events)


@given(records)
def test_following_every_record_ends_where_the_newest_of_each_seat_does(
        history: list[tuple[SeatKey, SeatState | Deleted | None]]) -> None:
    followed, rebuilt = Availability(), Availability()
    for seat, record in history:
        apply_newest(followed, seat, record)
    newest = dict(history)
    for seat, record in newest.items():
        apply_newest(rebuilt, seat, record)
    assert followed.seats == rebuilt.seats
    assert followed.deleted == rebuilt.deleted
    assert _counts(followed) == _counts(rebuilt)
    assert set(followed.seats) | set(followed.deleted) <= set(newest)


def test_a_delete_then_a_new_state_forgets_the_delete_and_counts_the_seat() -> None:
    a = Availability()
    apply_newest(a, (1, 1), SeatState(3, "SOLD", "101", 1, Decimal("50.00"), 10))
    apply_newest(a, (1, 1), Deleted(3, 20))
    assert (1, 1) not in a.seats and a.deleted[(1, 1)] == Deleted(3, 20)
    assert a.events[1].sold == 0
    apply_newest(a, (1, 1), SeatState(1, "OPEN", "101", 1, Decimal("50.00"), 30))
    assert (1, 1) not in a.deleted and a.events[1].open == 1
