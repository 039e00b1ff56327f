"""Per-partition state: a processor drops the events of revoked partitions and takes over those
of assigned ones, and the engine forgets what waits in a revoked partition."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.processor.aggregate import Availability, Deleted, SeatKey
from pipelines.processor.core import SeatState
from pipelines.processor.published import apply_newest

pytestmark = pytest.mark.unit

seats = st.tuples(st.integers(1, 6), st.integers(1, 5))
records = st.lists(st.tuples(seats, st.none() | st.builds(
    SeatState, version=st.integers(1, 5), status=st.sampled_from(["OPEN", "HELD", "SOLD"]),
    section_code=st.sampled_from(["101", "102"]), price_level_id=st.just(1),
    price=st.just(Decimal("50.00")), lsn=st.none()) | st.builds(
    Deleted, version=st.integers(1, 5), lsn=st.none())), max_size=40)


def _state(history: list[tuple[SeatKey, SeatState | Deleted | None]]) -> Availability:
    a = Availability()
    for seat, record in history:
        apply_newest(a, seat, record)
    return a


def _view(a: Availability) -> tuple:
    return (a.seats, a.deleted,
            {k: (c.open, c.held, c.sold) for k, c in a.sections.items()},
            {k: (c.open, c.held, c.sold) for k, c in a.events.items()})


@given(records, st.sets(st.integers(1, 6)))
def test_dropping_revoked_events_and_absorbing_them_back_gives_the_whole_state(
        history: list, assigned: set[int]) -> None:
    whole, mine = _state(history), _state(history)
    kept = whole.split(lambda e: e in assigned)
    mine.drop_events(lambda e: e in assigned)  # the others were revoked
    assert _view(mine) == _view(kept)
    assert all(k[0] in assigned for k in [*mine.seats, *mine.deleted])
    # The revoked events, assigned again later, complete it.
    mine.absorb(whole.split(lambda e: e not in assigned))
    assert _view(mine) == _view(whole)
