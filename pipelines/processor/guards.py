"""What keeps a processor process healthy around its Kafka clients and its heap: a watchdog
for calls that block for ever, a check that a broker answers, the garbage collector's tuning."""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.settings import Settings

__all__ = ["EXIT_HUNG", "Watchdog", "any_broker_answers", "tune_garbage_collector"]

log = logging.getLogger(__name__)

# The worker's exit code when a Kafka call blocked past its limit: its supervisor starts
# another at once (pipelines.processor.worker).
EXIT_HUNG = 4


class Watchdog:
    """Ends the process (EXIT_HUNG) when a guarded call overruns its limit: librdkafka's
    transaction calls can block for ever, past their own timeouts (runner.COMMIT_LIMIT_S)."""

    def __init__(self, enabled: bool) -> None:
        self._deadline: float | None = None
        self._what = ""
        if enabled:
            threading.Thread(target=self._watch, name="seatflow-watchdog", daemon=True).start()

    @contextmanager
    def limit(self, what: str, seconds: float) -> Iterator[None]:
        self._what, self._deadline = what, time.monotonic() + seconds
        try:
            yield
        finally:
            self._deadline = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                log.critical("%s has blocked for more than its limit: exiting, so that a fresh "
                             "processor takes over", self._what)
                logging.shutdown()
                os._exit(EXIT_HUNG)


def any_broker_answers(settings: Settings) -> bool:
    """Whether a bootstrap broker accepts a connection now. (An error event can be served long
    after it was raised: a fresh worker's first poll hands it the brokers-down event of its
    start, while the broker was still restarting.)"""
    for address in settings.kafka_bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return True
        except (OSError, ValueError):
            continue
    return False


def _refreeze(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def tune_garbage_collector() -> None:
    """The state is hundreds of thousands of long-lived objects, and a full collection of the
    cyclic garbage collector walks them all: a pause that grows with the state and with the
    machine's load, with every record waiting (docs/performance.md). Frozen after each full
    collection, they are walked once. (The state holds no reference cycles: what it drops,
    reference counting frees.)

    Each change also makes about fifteen short-lived objects, none in a cycle: a young
    collection every 700 allocations (Python's default) took a good share of the processor's
    time in `seatflow bench processor` (docs/performance.md); one every 100,000 takes next to
    none.
    """
    gc.collect()
    gc.freeze()
    if _refreeze not in gc.callbacks:
        gc.callbacks.append(_refreeze)
    gc.set_threshold(100_000)
