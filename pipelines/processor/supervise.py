"""The processor as a supervised child process: a crash is restarted at once, not by the next
sensor tick.

A processor that dies (SIGKILL, out of memory, a fatal Kafka error) loses nothing: its open
transaction is aborted when the next one with the same transactional id starts, and static group
membership gives that one the partitions at once. So the fastest safe recovery is to let a
warm standby take over, or else to start it again: the parent (a Dagster run, or the stack's
supervisord through `python -m pipelines.processor.supervise`) does, with a backoff that grows
only while the restarts keep failing in a row.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

from pipelines.settings import Settings

__all__ = [
    "EXIT_OFFSETS_LOST",
    "HEALTHY_AFTER_S",
    "STANDBY_AFTER_S",
    "SUPERVISE_MODULE",
    "WORKER_MODULE",
    "restart_delay",
    "settings_environment",
    "supervise_worker",
]

log = logging.getLogger(__name__)

# `python -m pipelines.processor.worker`: what `seatflow bench chaos` looks for to kill.
WORKER_MODULE = "pipelines.processor.worker"
SUPERVISE_MODULE = __name__
# The worker's exit code when committed offsets were trimmed away: restarting cannot help.
EXIT_OFFSETS_LOST = 3
# A worker that ran this long was healthy: its crash starts the backoff afresh.
HEALTHY_AFTER_S = 60.0
# A standby starts this long after its worker did: not at once, since its start (a full read of
# the state) competes for the CPU with the take-over it follows; not much later, since until it
# is warm a second crash costs a start.
STANDBY_AFTER_S = 1.0
_DELAYS_S = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def restart_delay(failures_in_row: int) -> float:
    """Seconds before the next start after `failures_in_row` (>= 1) crashes in a row: none
    after the first, then growing, never more than 30 s."""
    return _DELAYS_S[min(max(failures_in_row - 1, 0), len(_DELAYS_S) - 1)]


# The secrets the processor needs: it reads reference data as the application role, and logs in
# to Kafka as its own user when Kafka asks for one.
_WORKER_SECRETS = ("pg_app_password", "kafka_password")


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
            if not value:
                continue  # unset: an empty variable would hide the stack's generated one
        env[f"SEATFLOW_{name.upper()}"] = str(value)
    return env


def supervise_worker(settings: Settings, args: list[str], *, should_stop: Callable[[], bool],
                     say: Callable[[str], None] = log.warning,
                     env: Mapping[str, str] | None = None, standbys: int | None = None) -> int:
    """Run the worker until should_stop(), restarting it whenever it dies; the worker's last
    exit code (0 when stopped). EXIT_OFFSETS_LOST is returned at once: that is not a crash.

    `standbys` (settings.processor_standbys unless given) more workers wait warm (`--standby`);
    the oldest takes over when the active one dies: it has imported, connected and read the
    published state already, so the stream is back after a fence and the last records, where a
    cold start reads the whole state. With two, a second crash soon after a take-over still
    finds one warm: the standby started after the take-over needs seconds to read the state."""
    wanted = settings.processor_standbys if standbys is None else standbys
    environment = {**os.environ, **settings_environment(settings), **(env or {})}

    def start(warm: bool) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, *args, *(["--standby"] if warm else [])],
            env=environment, stdin=subprocess.PIPE if warm else subprocess.DEVNULL)

    failures = 0
    active, started = start(False), time.monotonic()
    spares: list[subprocess.Popen[bytes]] = []  # oldest (warmest) first
    # Not at once, and one at a time: a standby's start reads the whole state, which would
    # slow the worker's start (or take-over) and each other.
    spare_due = started + STANDBY_AFTER_S
    try:
        while True:
            if should_stop():
                _stop(active, *spares)
                return 0
            now = time.monotonic()
            for gone in [s for s in spares if s.poll() is not None]:
                say(f"standby worker {gone.pid} exited with {gone.returncode}; "
                    "starting another")
                spares.remove(gone)
                spare_due = max(spare_due, now + 1.0)
            if len(spares) < wanted and now >= spare_due:
                spares.append(start(True))
                spare_due = now + STANDBY_AFTER_S
            code = active.poll()
            if code is None:
                time.sleep(0.05)
                continue
            if code == EXIT_OFFSETS_LOST or (code == 0 and should_stop()):
                _stop(*spares)
                return code
            ran = now - started
            failures = 1 if ran >= HEALTHY_AFTER_S else failures + 1
            # A standby is a process of its own, warm and well: it takes over at once. Crashes in
            # a row that leave no standby (a worker dying at every start) wait the backoff.
            ready = bool(spares) and spares[0].poll() is None
            delay = 0.0 if ready else restart_delay(failures)
            taker = "its standby takes over" if ready else "starting it again"
            say(f"processor worker {active.pid} exited with {code} after {ran:.1f} s "
                f"({failures} in a row); {taker} in {delay:.1f} s")
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if should_stop():
                    _stop(*spares)
                    return code
                time.sleep(0.05)
            taker_process = _take_over(spares.pop(0)) if spares else None
            active = taker_process or start(False)
            started = time.monotonic()
            spare_due = max(spare_due, started + STANDBY_AFTER_S)
    except BaseException:  # the parent is being terminated: take the workers along
        _stop(active, *spares)
        raise


def _take_over(spare: subprocess.Popen[bytes]) -> subprocess.Popen[bytes] | None:
    """Tell the standby to take over; None when it is gone."""
    if spare.stdin is None or spare.poll() is not None:
        return None
    try:
        spare.stdin.write(b"go\n")
        spare.stdin.flush()
    except OSError:
        return None
    return spare


def _stop(*children: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (a worker ends its batch and its transaction), then SIGKILL after 30 s."""
    alive = [c for c in children if c is not None and c.poll() is None]
    for child in alive:
        child.terminate()
    for child in alive:
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


def main() -> int:
    """`python -m pipelines.processor.supervise`: a worker and its standbys until SIGTERM."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return supervise_worker(Settings(), sys.argv[1:], should_stop=stop.is_set)


if __name__ == "__main__":
    sys.exit(main())
