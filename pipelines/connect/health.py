"""When to restart a failed connector: a bounded backoff, then giving up instead of flapping."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

__all__ = ["RestartPolicy", "RestartState", "Step", "next_step"]

Step = Literal["healthy", "restart", "wait", "give_up", "given_up"]


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 4
    first_delay_s: float = 30.0
    max_delay_s: float = 600.0
    # A connector must stay healthy this long after a restart before its count is forgiven, so a
    # task that fails a minute after each restart still reaches the bound.
    stable_after_s: float = 300.0

    def delay(self, restarts: int) -> float:
        """Wait before restart number restarts + 1 (doubling, capped)."""
        return min(self.first_delay_s * 2 ** max(restarts - 1, 0), self.max_delay_s)


@dataclass(frozen=True)
class RestartState:
    restarts: int = 0
    last_restart: float = 0.0
    gave_up: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestartState:
        return cls(int(data.get("restarts", 0)), float(data.get("last_restart", 0.0)),
                   bool(data.get("gave_up", False)))


def next_step(state: RestartState | None, *, failed: bool, now: float,
              policy: RestartPolicy) -> tuple[Step, RestartState | None]:
    """What to do about one connector now, and the state to remember (None: forget it)."""
    if not failed:
        if state is None or now - state.last_restart >= policy.stable_after_s:
            return "healthy", None
        return "healthy", state  # recently restarted: remember the count a while longer
    state = state or RestartState()
    if state.gave_up:
        return "given_up", state
    if state.restarts and now - state.last_restart < policy.delay(state.restarts):
        return "wait", state  # the last restart still has its time to work
    if state.restarts >= policy.max_restarts:
        return "give_up", replace(state, gave_up=True)
    return "restart", RestartState(state.restarts + 1, now)
