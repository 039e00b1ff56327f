"""How `bench catchup` reads a drain's curve: when records began, when 99 % had come, the rate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.bench.catchup import drain

pytestmark = pytest.mark.unit


def test_a_steady_drain_gives_its_rate_from_the_last_empty_sample() -> None:
    # Nothing for a second (the connector resuming), then 10,000 a second for 10 s.
    curve = [(0.5, 0), (1.0, 0)] + [(1.0 + 0.5 * i, 5_000 * i) for i in range(1, 21)]
    d = drain(curve)
    assert d.started_s == 1.5
    assert d.done_s == 11.0
    assert d.per_s == 10_000


def test_the_tail_does_not_count() -> None:
    # 99 % in 5 s, then the last 1 % trickles in for 20 s more: the rate is the bulk's.
    curve = [(0.0, 0)] + [(float(i), 19_800 * i) for i in range(1, 6)] + [
        (5.0 + i, 99_000 + 50 * i) for i in range(1, 21)]
    d = drain(curve)
    assert d.done_s == 5.0
    assert d.per_s == 19_800


def test_no_records_is_no_drain() -> None:
    assert drain([]).per_s is None
    d = drain([(0.5, 0), (1.0, 0)])
    assert (d.started_s, d.done_s, d.per_s) == (None, None, None)


def test_a_drain_inside_the_first_sample_has_no_measurable_rate() -> None:
    d = drain([(0.0, 100), (0.5, 100)])
    assert d.started_s == 0.0 and d.per_s is None


@given(st.lists(st.integers(0, 5_000), min_size=1, max_size=40),
       st.floats(0.1, 2.0))
def test_the_rate_never_exceeds_what_the_samples_allow(steps: list[int], every: float) -> None:
    counts, total = [], 0
    for step in steps:
        total += step
        counts.append(total)
    curve = [(every * (i + 1), n) for i, n in enumerate(counts)]
    d = drain(curve)
    if total == 0:
        assert d.per_s is None
        return
    assert d.started_s is not None and d.done_s is not None
    assert d.started_s <= d.done_s
    assert curve[0][0] <= d.started_s
    if d.per_s is not None:
        # No faster than everything arriving within the span from the last empty sample (or
        # the resume) to the sample that reached 99 %.
        empty = max((t for t, n in curve if n == 0), default=0.0)
        assert d.per_s <= round(total / (d.done_s - empty)) + 1
