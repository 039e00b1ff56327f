"""The one polling loop: returns the first answer that holds, reports the others, gives up
with the last one."""

from __future__ import annotations

import time

import pytest

from pipelines.polling import PollTimeoutError, poll

pytestmark = pytest.mark.unit


def test_returns_the_first_answer_that_holds_and_reports_the_ones_before() -> None:
    answers = iter([0, 1, 2, 3, 4])
    seen: list[int] = []
    assert poll(lambda: next(answers), until=lambda n: n >= 3, timeout_s=5, every_s=0.01,
                on_wait=seen.append) == 3
    assert seen == [0, 1, 2]


def test_gives_up_after_the_timeout_with_the_last_answer() -> None:
    started = time.monotonic()
    with pytest.raises(PollTimeoutError) as caught:
        poll(lambda: "not yet", until=lambda a: a == "done", timeout_s=0.3, every_s=0.05)
    assert 0.25 <= time.monotonic() - started < 3
    assert caught.value.last == "not yet"
    assert isinstance(caught.value, TimeoutError)


def test_an_error_of_the_probe_ends_the_wait_at_once() -> None:
    calls = []

    def probe() -> bool:
        calls.append(1)
        raise RuntimeError("the instance died")

    with pytest.raises(RuntimeError, match="died"):
        poll(probe, until=bool, timeout_s=5, every_s=0.01)
    assert len(calls) == 1
