"""The processor as a supervised child process: a crash is restarted at once, not by the next
sensor tick.

A processor that dies (SIGKILL, out of memory, a fatal Kafka error) loses nothing: its open
transaction is aborted when the next one with the same transactional id starts, and static group
membership gives that one the partitions at once. So the fastest safe recovery is simply to
start it again: the parent (a Dagster run, or `seatflow processor run`) does, with a backoff
that grows only while the restarts keep failing in a row.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

from pipelines.settings import Settings

__all__ = ["EXIT_OFFSETS_LOST", "HEALTHY_AFTER_S", "WORKER_MODULE", "restart_delay",
           "settings_environment", "supervise_worker"]

log = logging.getLogger(__name__)

# `python -m pipelines.processor.worker`: what `seatflow bench chaos` looks for to kill.
WORKER_MODULE = "pipelines.processor.worker"
# The worker's exit code when committed offsets were trimmed away: restarting cannot help.
EXIT_OFFSETS_LOST = 3
# A worker that ran this long was healthy: its crash starts the backoff afresh.
HEALTHY_AFTER_S = 60.0
_DELAYS_S = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def restart_delay(failures_in_row: int) -> float:
    """Seconds before the next start after `failures_in_row` (>= 1) crashes in a row: none
    after the first, then growing, never more than 30 s."""
    return _DELAYS_S[min(max(failures_in_row - 1, 0), len(_DELAYS_S) - 1)]


# The one secret the processor needs: it reads reference data as the application role.
_WORKER_SECRETS = ("pg_app_password",)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The SEATFLOW_* variables that give a child process these settings; of the secrets only
    the one it needs, through the environment, never the command line."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            if name not in _WORKER_SECRETS:
                continue
            value = value.get_secret_value()
        env[f"SEATFLOW_{name.upper()}"] = str(value)
    return env


def supervise_worker(settings: Settings, args: list[str], *, should_stop: Callable[[], bool],
                     say: Callable[[str], None] = log.warning,
                     env: Mapping[str, str] | None = None) -> int:
    """Run the worker until should_stop(), restarting it whenever it dies; the worker's last
    exit code (0 when stopped). EXIT_OFFSETS_LOST is returned at once: that is not a crash."""
    failures = 0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, *args],
            env={**os.environ, **settings_environment(settings), **(env or {})})
        try:
            while child.poll() is None:
                if should_stop():
                    _stop(child)
                    return 0
                time.sleep(0.05)
        except BaseException:  # the parent is being terminated: take the worker along
            _stop(child)
            raise
        code = child.returncode
        if code == EXIT_OFFSETS_LOST or (code == 0 and should_stop()):
            return code
        ran = time.monotonic() - started
        failures = 1 if ran >= HEALTHY_AFTER_S else failures + 1
        delay = restart_delay(failures)
        say(f"processor worker {child.pid} exited with {code} after {ran:.1f} s "
            f"({failures} in a row); starting it again in {delay:.1f} s")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if should_stop():
                return code
            time.sleep(0.05)


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the worker ends its batch and its transaction), then SIGKILL after 30 s."""
    child.terminate()
    try:
        child.wait(30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(10)
