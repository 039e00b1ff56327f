"""When a step of `bench sustained` kept up: the generator made its rate, the pipeline
published it, and staleness stayed bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.bench.sustained import MAX_STALENESS_MS, Window, keeps_up

pytestmark = pytest.mark.unit


def windows(staleness: list[float], *, committed: float = 4000, published: float = 4000,
            ) -> list[Window]:
    return [Window(5.0 * (i + 1), committed, published, s, s * 1.5, 100)
            for i, s in enumerate(staleness)]


def test_steady_staleness_at_the_rate_keeps_up() -> None:
    assert keeps_up(windows([900, 400] + [120, 150, 110, 180] * 3), 4000)[0]


def test_staleness_that_grows_does_not_keep_up_though_every_sample_is_small() -> None:
    ok, why = keeps_up(windows([100, 100] + [100 + 250 * i for i in range(12)]), 4000)
    assert not ok and "grew" in why


def test_a_generator_short_of_its_rate_is_named_as_the_limit() -> None:
    ok, why = keeps_up(windows([100] * 12, committed=3000, published=3000), 4000)
    assert not ok and "generator" in why


def test_publishing_less_than_committed_does_not_keep_up() -> None:
    ok, why = keeps_up(windows([100] * 12, published=3000), 4000)
    assert not ok and "published" in why


def test_too_few_windows_tell_nothing() -> None:
    assert not keeps_up(windows([100] * 5), 4000)[0]


@given(st.lists(st.floats(0, 20_000), min_size=6, max_size=40))
def test_never_kept_up_past_the_staleness_ceiling(staleness: list[float]) -> None:
    ok, _ = keeps_up(windows(staleness), 4000)
    if max(staleness[2:]) > MAX_STALENESS_MS:
        assert not ok
