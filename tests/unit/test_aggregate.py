from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.processor.aggregate import AvailabilityState

pytestmark = pytest.mark.unit

STATUSES = ["OPEN", "HELD", "SOLD"]


def record(seat: int, status: str, version: int, section: str = "101") -> tuple[dict, dict]:
    key = {"event_id": 1, "seat_id": seat}
    return key, {"source_version": version, "status": status, "section_code": section}


def test_counts_follow_the_latest_version_only() -> None:
    state = AvailabilityState()
    state.apply(*record(1, "OPEN", 1))
    state.apply(*record(1, "HELD", 2))
    assert state.apply(*record(1, "OPEN", 1)) is False  # an older version is a duplicate
    assert state.sections[(1, "101")] == Counter({"HELD": 1, "OPEN": 0})


def test_tombstone_removes_the_seat() -> None:
    state = AvailabilityState()
    state.apply(*record(1, "SOLD", 3))
    assert state.apply({"event_id": 1, "seat_id": 1}, None) is True
    assert +state.sections[(1, "101")] == Counter()


@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.sampled_from(STATUSES), st.sampled_from(["101", "102"])),
        max_size=200,
    )
)
def test_replaying_a_random_history_gives_the_counts_of_the_final_state(history: list) -> None:
    """Records arrive out of order and repeated; the counts equal those of each seat's newest version."""
    state = AvailabilityState()
    newest: dict[int, tuple[int, str, str]] = {}
    for version, (seat, status, section) in enumerate(history, start=1):
        section = "101" if seat % 2 else "102"  # a seat stays in its section
        newest[seat] = (version, status, section)
        state.apply(*record(seat, status, version, section))
        state.apply(*record(seat, "OPEN", version - 1, section))  # a late duplicate changes nothing
    expected: dict[tuple[int, str], Counter[str]] = {}
    for _, status, section in newest.values():
        expected.setdefault((1, section), Counter())[status] += 1
    assert {k: +v for k, v in state.sections.items() if +v} == expected
    assert sum(state.event_totals().get(1, Counter()).values()) == len(newest)
