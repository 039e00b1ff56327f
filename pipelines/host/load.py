"""A long on-sale as load for the benchmarks: one or more simulator processes at a lower
priority, kept going for as long as asked. Used by `bench chaos`, `bench scale` and
`bench sustained`."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import threading
import time
from typing import Any

from pipelines.settings import Settings
from pipelines.stack import health

__all__ = ["ONSALE_CHUNK_S", "ONSALE_HOLD_TTL_S", "ONSALE_OUTCOMES", "SIMULATOR_NICE", "OnSale"]

# The simulator stands in for the fans' apps, which run on other machines. Here it shares the 2
# cores with what it measures, so it runs at a lower priority and no longer delays Connect,
# Kafka and the processor (docs/performance.md). Its queries run in PostgreSQL's backends, at
# their usual priority.
SIMULATOR_NICE = 10
# Buyers who mostly release or abandon their holds: seats go back on sale, so a long on-sale
# (all the faults of a chaos mix, each healed; minutes at a high rate) does not sell out.
ONSALE_OUTCOMES = {"buy": 0.1, "release": 0.45, "abandon": 0.45}
# How long a fan's hold lasts before it lapses, unless the run asks for another.
ONSALE_HOLD_TTL_S = 15.0
# Each on-sale process runs this long; a new one follows (PostgreSQL's stop ends one early).
ONSALE_CHUNK_S = 60.0


def _onsale_child(rate: float, duration: float, seed: int, hold_ttl: float,
                  batch: int = 1) -> None:
    """One on-sale process (multiprocessing target): the fans' apps, at a lower priority."""
    from pipelines.host import HostError
    from pipelines.host.onsale import OutcomeWeights
    from pipelines.host.simulate import run_onsale

    os.nice(SIMULATOR_NICE)
    parent = os.getppid()

    def orphaned() -> None:
        # The benchmark was killed: its on-sale must not go on alone.
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    # The pool's warnings, one per connection PostgreSQL's stop broke, are expected here.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        run_onsale(Settings(), rate=rate, duration=duration, seed=seed, hold_ttl=hold_ttl,
                   outcomes=OutcomeWeights(**ONSALE_OUTCOMES), batch=batch)
    except HostError as e:  # PostgreSQL stopped under it: the parent starts another
        raise SystemExit(f"on-sale ended: {e}") from None


class OnSale:
    """`processes` on-sale processes, each at rate/processes, each followed by another when it
    ends (after ONSALE_CHUNK_S, or early when its database stopped and PostgreSQL answers
    again). One process tops out at a few thousand changes a second; more reach further."""

    def __init__(self, settings: Settings, *, rate: float, seed: int,
                 hold_ttl: float = ONSALE_HOLD_TTL_S, processes: int = 1,
                 batch: int = 1) -> None:
        self.settings = settings
        self.rate = rate
        self.rng = random.Random(seed)  # noqa: S311
        self.hold_ttl = hold_ttl
        self.batch = batch
        self.procs: list[Any] = [None] * processes
        self.started = 0
        self.failed = 0
        self._ctx = multiprocessing.get_context("spawn")

    def keep_going(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.is_alive():
                continue
            if proc is not None:
                self.failed += proc.exitcode not in (0, None)
                self.procs[i] = None
            if health.check("postgres", self.settings) is not None:
                return  # the next call tries again
            self.procs[i] = self._ctx.Process(
                target=_onsale_child, name=f"onsale-{i}", daemon=True,
                args=(self.rate / len(self.procs), ONSALE_CHUNK_S, self.rng.getrandbits(32),
                      self.hold_ttl, self.batch))
            self.procs[i].start()
            self.started += 1

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.pid is not None]

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.is_alive():
                proc.terminate()
                proc.join(30)
        self.procs = [None] * len(self.procs)
