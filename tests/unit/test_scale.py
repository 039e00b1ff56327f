"""The pure part of `seatflow bench scale`: rates and ratios from the timings."""

from __future__ import annotations

import pytest

from pipelines.scale import speedups

pytestmark = pytest.mark.unit


def test_speedups_are_rates_relative_to_the_first_count() -> None:
    assert speedups([(1, 10.0), (2, 6.0), (4, 5.0)], 60_000) == [
        (1, 6000, 1.0), (2, 10000, 1.67), (4, 12000, 2.0)]
    assert speedups([(2, 4.0)], 1000) == [(2, 250, 1.0)]
    assert speedups([], 1000) == []
