"""Waiting for a condition: the one polling loop of seatflow (on tenacity)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_fixed

__all__ = ["PollTimeoutError", "poll"]

R = TypeVar("R")


class PollTimeoutError(TimeoutError):
    """The condition did not hold within the time; `last` is the probe's last answer, for the
    caller's message."""

    def __init__(self, timeout_s: float, last: Any) -> None:
        super().__init__(f"still waiting after {timeout_s:g} s (last: {last!r})")
        self.last = last


def poll(probe: Callable[[], R], *, until: Callable[[R], bool], timeout_s: float,
         every_s: float = 1.0, on_wait: Callable[[R], None] | None = None) -> R:
    """Call `probe` every `every_s` until `until(answer)` holds, and return that answer.

    `on_wait` sees each answer that did not (progress for a person). An exception raised by the
    probe ends the wait at once: a probe that can fail transiently catches that itself.
    PollTimeoutError once `timeout_s` has passed.
    """
    def before_sleep(state: RetryCallState) -> None:
        if on_wait is not None and state.outcome is not None:
            on_wait(state.outcome.result())

    def give_up(state: RetryCallState) -> R:
        raise PollTimeoutError(timeout_s, state.outcome.result() if state.outcome else None)

    retrying = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(every_s),
                        retry=retry_if_result(lambda answer: not until(answer)),
                        before_sleep=before_sleep, retry_error_callback=give_up, reraise=True)
    return retrying(probe)
