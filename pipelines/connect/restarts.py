"""When to restart a failed connector: at once, then with a capped exponential backoff, for as
long as it fails; a failure report once it has failed `report_after` restarts in a row.

Giving up is not an option for the pipeline's only source: a task that fails after a broker
or database restart, or while the registry is away, must come back once they are back,
however long that takes. The backoff keeps a connector that fails for good from flapping
(at most one restart per `max_delay_s`), and the report tells a person.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from tenacity import RetryCallState, wait_exponential

__all__ = ["RestartPolicy", "RestartState", "Step", "next_step"]

# "report": restart, and start a failure report run (once per run of failures).
Step = Literal["healthy", "restart", "wait", "report"]


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 10.0
    max_delay_s: float = 300.0
    # Restarts in a row, none of which held, before a person is told (and restarts go on).
    report_after: int = 4
    # A connector must stay healthy this long after a restart before its count is forgiven, so
    # a task that fails a minute after each restart still backs off and is reported.
    stable_after_s: float = 300.0

    def delay(self, restarts: int) -> float:
        """Wait before restart number restarts + 1: none before the first, then
        first_delay_s doubling up to max_delay_s (tenacity's wait_exponential, computed
        without sleeping)."""
        if restarts <= 0:
            return 0.0
        wait = wait_exponential(multiplier=self.first_delay_s, max=self.max_delay_s)
        # The wait reads nothing of the call state but its attempt number.
        attempt = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        attempt.attempt_number = restarts
        return float(wait(attempt))


@dataclass(frozen=True)
class RestartState:
    restarts: int = 0
    last_restart: float = 0.0
    reported: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestartState:
        # Cursors written before restarts went on for ever said "gave_up" for "reported".
        return cls(int(data.get("restarts", 0)), float(data.get("last_restart", 0.0)),
                   bool(data.get("reported", data.get("gave_up", False))))


def next_step(state: RestartState | None, *, failed: bool, now: float,
              policy: RestartPolicy) -> tuple[Step, RestartState | None]:
    """What to do about one connector now, and the state to remember (None: forget it)."""
    if not failed:
        if state is None or now - state.last_restart >= policy.stable_after_s:
            return "healthy", None
        return "healthy", state  # recently restarted: remember the count a while longer
    state = state or RestartState()
    if now - state.last_restart < policy.delay(state.restarts):
        return "wait", state  # the last restart still has its time to work
    restarted = replace(state, restarts=state.restarts + 1, last_restart=now)
    if restarted.restarts > policy.report_after and not state.reported:
        return "report", replace(restarted, reported=True)
    return "restart", restarted
