"""`seatflow bench scale`: the processor over 1, 2, 4... instances, and what a change of
instances costs the fans.

Two parts. Throughput: the same synthetic changes, event-partitioned, processed by each number
of instances (processes that are members of one consumer group, each with its own
transactional id), timed from when they are written, once the group has shared out the
partitions, until the group has committed them all; with each instance's CPU, since this
machine's two cores bound the gain. Membership: the pipeline's
own processor as supervised slots (`python -m pipelines.processor.supervise --slot N`, as the
Dagster keeper runs them) during an on-sale, while a slot is added, stopped gracefully, and its
worker killed; the longest staleness a read_committed reader of seat-availability saw after
each (the chaos bench's measure).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from pipelines.bench import produce_changes, scratch_config, scratch_outputs, synthetic_changes
from pipelines.chaos import VersionTail, find_processor
from pipelines.host.load import OnSale
from pipelines.kafka import clients
from pipelines.kafka.admin import ensure_topics
from pipelines.kafka.groups import end_offsets, group_lag, group_members, group_shares
from pipelines.kafka.topics import SEAT_AVAILABILITY, TopicSpec
from pipelines.partitioning import event_partition
from pipelines.polling import PollTimeoutError, poll
from pipelines.processor.config import GROUP_ID
from pipelines.processor.runner import run_processor
from pipelines.processor.supervise import SUPERVISE_MODULE, WORKER_MODULE, settings_environment
from pipelines.settings import Settings

__all__ = ["MembershipChange", "ScaleReport", "ThroughputRound", "bench_scale", "speedups"]


@dataclass
class ThroughputRound:
    instances: int
    seconds: float  # from writing the changes (the group settled) until it committed them all
    changes_per_s: float
    ratio: float  # to one instance
    cpu_s: list[float]  # per instance, over the round
    changes_each: list[int]  # what each instance processed


@dataclass
class MembershipChange:
    what: str
    at_s: float  # into the on-sale
    staleness_s: float  # the longest, from this change until the next


@dataclass
class ScaleReport:
    changes: int
    partitions: int
    partitions_with_changes: int
    rounds: list[ThroughputRound] = field(default_factory=list)
    onsale_rate: float = 0.0
    baseline_staleness_s: float = 0.0  # before any change, for comparison
    changes_of_membership: list[MembershipChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def speedups(seconds: Sequence[tuple[int, float]], changes: int) -> list[tuple[int, float, float]]:
    """(instances, changes/s, ratio to the first) for each (instances, seconds) (pure)."""
    if not seconds:
        return []
    base = changes / seconds[0][1]
    return [(n, round(changes / s), round((changes / s) / base, 2)) for n, s in seconds]


# ---- throughput --------------------------------------------------------------------------------

def _instance(settings: Settings, source: str, outputs: dict[str, str], name: str, slot: int,
              partitions: int, go: Any, stop: Any, cpu: Any, processed: Any) -> None:
    """One instance (a process of its own): ready and waiting until `go`, then processing until
    `stop`; its CPU seconds from `go` on into cpu[slot], the changes it read into
    processed[slot]."""
    config = scratch_config(source, outputs, name, slot=slot, partitions=partitions)
    me = psutil.Process()
    at_go: list[float] = []

    def started() -> bool:
        if go.is_set() and not at_go:
            times = me.cpu_times()
            at_go.append(times.user + times.system)
        return bool(at_go)

    stats = run_processor(settings, should_stop=stop.is_set, config=config, standby=started)
    times = me.cpu_times()
    cpu[slot] = times.user + times.system - (at_go[0] if at_go else 0.0)
    processed[slot] = stats.records_in


def _round(settings: Settings, values: list[tuple[int, bytes]], instances: int, run: str,
           *, timeout_s: float, say: Callable[[str], None]) -> tuple[float, list[float], list[int]]:
    """Seconds for `instances` to process all the changes; each one's CPU seconds and
    changes. The changes are written once the group has shared out the partitions: the
    instances that join first would otherwise take everything before the others are in."""
    ctx = mp.get_context("spawn")  # a fresh interpreter each, like a worker process
    name = f"{run}-{instances}"
    source = f"{name}.cdc"
    admin = clients.admin(settings)
    ensure_topics(admin, [TopicSpec(source, partitions=settings.partitions)])
    try:
        with scratch_outputs(settings, name, partitions=settings.partitions) as outputs:
            go, stop = ctx.Event(), ctx.Event()
            cpu, processed = ctx.Array("d", instances), ctx.Array("q", instances)
            procs = [ctx.Process(target=_instance, daemon=True, args=(
                settings, source, outputs, name, slot, settings.partitions, go, stop, cpu,
                processed)) for slot in range(instances)]
            for proc in procs:
                proc.start()
            go.set()
            _wait_shared_out(settings, name, source, instances, procs)
            say(f"{instances} instance(s) in the group: writing the changes")
            started = time.perf_counter()
            produce_changes(settings, source, values, partitions=settings.partitions)
            _until(lambda: group_lag(settings, name, source) == 0, procs,
                   f"{instances} instance(s) to process {source}", timeout_s, every_s=0.1)
            seconds = time.perf_counter() - started
            stop.set()
            for proc in procs:
                proc.join(60)
    finally:
        admin.delete_topics([source], request_timeout=30)
    return (seconds, [round(cpu[i], 1) for i in range(instances)],
            [processed[i] for i in range(instances)])


def _wait_shared_out(settings: Settings, group: str, topic: str, instances: int,
                     procs: Sequence[Any], timeout_s: float = 120) -> None:
    """Until every instance is in the group and the topic's partitions are all assigned, each
    instance holding some (as far as there are partitions for all)."""
    def shared_out() -> bool:
        shares = group_shares(settings, group, topic)
        owned = sorted(p for share in shares for p in share.partitions)
        return (len(shares) == instances and owned == list(range(settings.partitions))
                and all(share.partitions for share in shares[:settings.partitions]))

    _until(shared_out, procs, f"{instances} instance(s) to share out {topic}", timeout_s,
           every_s=0.2)


def _until(done: Callable[[], bool], procs: Sequence[Any], what: str, timeout_s: float, *,
           every_s: float) -> None:
    """Poll done() until it is true; an instance that dies meanwhile fails the round at once."""
    def probe() -> bool:
        if not all(p.is_alive() for p in procs):
            raise RuntimeError(f"an instance died while waiting for {what}")
        return done()

    try:
        poll(probe, until=bool, timeout_s=timeout_s, every_s=every_s)
    except PollTimeoutError as e:
        raise TimeoutError(f"waited {timeout_s:.0f} s for {what}") from e


# ---- membership ----------------------------------------------------------------------------------

def _slot(settings: Settings, slot: int) -> subprocess.Popen[bytes]:
    """A supervised slot as the Dagster keeper runs it: a worker and one warm standby."""
    env = {**os.environ, **settings_environment(settings), "SEATFLOW_PROCESSOR_STANDBYS": "1"}
    return subprocess.Popen([sys.executable, "-m", SUPERVISE_MODULE, "--slot", str(slot)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _worker_of(supervisor: subprocess.Popen[bytes]) -> psutil.Process | None:
    """The active worker a supervisor runs: its oldest worker child (standbys come later)."""
    children = [c for c in psutil.Process(supervisor.pid).children()
                if WORKER_MODULE in " ".join(c.cmdline())]
    return min(children, key=lambda c: c.create_time()) if children else None


def _wait_members(settings: Settings, count: int, timeout_s: float = 120) -> None:
    _until(lambda: group_members(settings, GROUP_ID) == count, (),
           f"{count} members in {GROUP_ID}", timeout_s, every_s=0.5)


def _membership(settings: Settings, report: ScaleReport, *, rate: float, step_s: float,
                say: Callable[[str], None]) -> None:
    if find_processor() is not None:
        raise RuntimeError("a processor runs already: stop it first (seatflow stack down, or "
                           "the Dagster stream run), the bench runs its own slots")
    slots = {0: _slot(settings, 0), 1: _slot(settings, 1)}
    tail: VersionTail | None = None
    onsale: OnSale | None = None
    try:
        _wait_members(settings, 2)
        tail = VersionTail(settings, end_offsets(settings, SEAT_AVAILABILITY))
        tail.start()
        onsale = OnSale(settings, rate=rate, seed=3)
        t0 = time.time()
        marks: list[tuple[str, float]] = []

        def until(seconds: float) -> None:
            while time.time() - t0 < seconds:
                assert onsale is not None
                onsale.keep_going()
                time.sleep(0.2)

        until(step_s)
        say("adding slot 2")
        marks.append(("slot 2 added", time.time()))
        slots[2] = _slot(settings, 2)
        until(3 * step_s)
        say("stopping slot 2 (SIGTERM)")
        marks.append(("slot 2 stopped gracefully", time.time()))
        slots[2].terminate()
        slots[2].wait(60)
        until(5 * step_s)
        worker = _worker_of(slots[0])
        if worker is None:
            raise RuntimeError("slot 0 runs no worker")
        say(f"killing slot 0's worker {worker.pid} (SIGKILL)")
        marks.append(("slot 0's worker killed", time.time()))
        worker.send_signal(signal.SIGKILL)
        until(7 * step_s)
        end = time.time()
    finally:
        if onsale is not None:
            onsale.stop()
        for proc in slots.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in slots.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tail is not None:
            tail.stop.set()
            tail.join(30)
    # Before any change, then each change until the next (the last: until the on-sale's end).
    starts = [t0 + step_s / 2, *(at for _, at in marks)]
    baseline, *after = tail.staleness(list(zip(starts, [*starts[1:], end], strict=True)))
    report.onsale_rate = rate
    report.baseline_staleness_s = baseline
    report.changes_of_membership = [MembershipChange(what, round(at - t0, 1), stale)
                                    for (what, at), stale in zip(marks, after, strict=True)]


# ---- the bench -----------------------------------------------------------------------------------

def bench_scale(settings: Settings, *, changes: int = 300_000,
                instances: Sequence[int] = (1, 2, 4), rate: float = 1000, step_s: float = 10.0,
                membership: bool = True, timeout_s: float = 600.0,
                say: Callable[[str], None] = lambda _: None) -> ScaleReport:
    run = f"bench-scale-{uuid.uuid4().hex[:8]}"
    say(f"encoding {changes:,} synthetic seat changes")
    _, values = synthetic_changes(settings, changes)
    used = len({event_partition(e, settings.partitions) for e, _ in values})
    say(f"{settings.partitions} partitions, {used} carrying changes")
    report = ScaleReport(changes, settings.partitions, used)
    timings: list[tuple[int, float]] = []
    cpus: dict[int, list[float]] = {}
    each: dict[int, list[int]] = {}
    for n in instances:
        seconds, cpus[n], each[n] = _round(settings, values, n, run, timeout_s=timeout_s,
                                           say=say)
        timings.append((n, seconds))
        say(f"{n} instance(s): {changes / seconds:,.0f} changes/s")
    del values
    for (n, per_s, ratio), (_, seconds) in zip(speedups(timings, changes), timings, strict=True):
        report.rounds.append(ThroughputRound(n, round(seconds, 2), per_s, ratio, cpus[n], each[n]))
    if membership:
        _membership(settings, report, rate=rate, step_s=step_s, say=say)
    return report
