"""`seatflow bench catchup`: how fast capture and processing go when nothing else needs the
cores: a backlog committed while the connector is paused, then drained.

On this machine's 2 cores a live on-sale cannot tell the pipeline's limit: the simulator and
PostgreSQL's own work take half the CPU, and the simulator tops out near 4,000 changes/s
(`bench sustained`). Here the on-sale runs first, with Debezium paused (its replication slot
keeps the WAL); then the connector resumes, and the changes flow through Debezium, Connect's
exactly-once transactions and the processor's as they would live, only as fast as they can.
The figures are an upper bound of a live rate: a backlog fills Debezium's batches and the
processor's, so each transaction carries more changes than a live one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient

from pipelines.bench.common import run_cli
from pipelines.bench.latency import CpuSampler, MachineLoad
from pipelines.bench.sustained import row_changes
from pipelines.connect.client import ConnectClient
from pipelines.connect.files import load_connectors
from pipelines.deploy import wait_caught_up
from pipelines.kafka import clients
from pipelines.kafka.groups import end_offsets, group_lag
from pipelines.kafka.topics import SEAT_AVAILABILITY, cdc_topic
from pipelines.processor.config import GROUP_ID
from pipelines.settings import Settings

__all__ = ["CatchUpReport", "Drain", "bench_catch_up", "drain"]

# The share of a drain's records that sets its end: the last few arrive with the heartbeat
# and the final commits, which time the tail, not the throughput.
DRAINED = 0.99
# Samples in a row without a new CDC record that end a drain whose count fell short.
STALLED = 6


@dataclass(frozen=True)
class Drain:
    started_s: float | None  # from the resume to the first record
    done_s: float | None  # from the resume to DRAINED of the records
    per_s: float | None  # records per second between the two


def drain(curve: Sequence[tuple[float, int]], *, fraction: float = DRAINED) -> Drain:
    """When records began to arrive, when `fraction` of the final count had, and the rate
    between (pure): `curve` is (seconds since the resume, records so far), in time order."""
    if not curve or curve[-1][1] <= 0:
        return Drain(None, None, None)
    final = curve[-1][1]
    started = next(t for t, n in curve if n > 0)
    done_at, done_n = next((t, n) for t, n in curve if n >= fraction * final)
    # The sample before the first record bounds its arrival from below; a drain within one
    # sample has no measurable span.
    before = max((t for t, n in curve if n == 0), default=0.0)
    span = done_at - before
    return Drain(started, done_at, round(done_n / span) if span > 0 else None)


@dataclass
class CatchUpReport:
    backlog_s: float
    changes_committed: int  # seat_inventory's row changes during the on-sale
    generator_per_s: float  # committed changes/s with the connector paused
    cdc_records: int  # records added to the CDC topic by the drain
    published_records: int  # records added to seat-availability by the drain
    capture: Drain
    processing: Drain
    processor_lag_end: int
    cpu_seconds: dict[str, float]  # per process group, over the drain
    machine: MachineLoad  # the whole machine, over the drain
    curve: list[tuple[float, int, int]] = field(default_factory=list)  # (s, cdc, published)


def _counts(settings: Settings, cdc: str, admin: AdminClient) -> tuple[int, int]:
    # One admin client for every sample: a new one per call would log in to the broker under
    # measurement four times a second.
    return (sum(end_offsets(settings, cdc, admin=admin).values()),
            sum(end_offsets(settings, SEAT_AVAILABILITY, admin=admin).values()))


def bench_catch_up(settings: Settings, *, backlog_s: float = 40, start_processor: bool = True,
                   timeout_s: float = 900, every_s: float = 0.5,
                   say: Callable[[str], None] = lambda _: None) -> CatchUpReport:
    """Pause the pipeline's connectors, run the on-sale flat out for backlog_s, resume, and
    follow the CDC topic and seat-availability until the processor has published it all."""
    connect = ConnectClient.from_settings(settings)
    names = [c.name for c in load_connectors()]
    cdc = cdc_topic(settings, "seat_inventory")
    admin = clients.admin(settings, log_level=4)
    processor = run_cli("processor", "run") if start_processor else None
    try:
        say("waiting for the pipeline to publish everything committed so far")
        wait_caught_up(settings, timeout_s=300)
        for name in names:
            connect.pause(name)
        # A pause reaches the task between two polls: let the last transaction land.
        time.sleep(3)
        base = _counts(settings, cdc, admin)
        changes0 = row_changes(settings)
        say(f"connectors paused; on-sale flat out for {backlog_s:.0f} s")
        started = time.monotonic()
        if run_cli("simulate", "--rate", "0", "--duration", str(backlog_s)).wait(
                backlog_s + 120) != 0:
            raise RuntimeError("the on-sale (seatflow simulate) failed")
        generated_s = time.monotonic() - started
        time.sleep(1.5)  # PostgreSQL's statistics reach the view within about a second
        committed = row_changes(settings) - changes0
        if (moved := _counts(settings, cdc, admin)[0] - base[0]) > 0:
            raise RuntimeError(f"{moved} CDC records arrived while the connectors were paused")
        say(f"{committed:,} changes committed; resuming the connectors")
        curve: list[tuple[float, int, int]] = []
        with CpuSampler() as sampler:
            resumed = time.monotonic()
            for name in names:
                connect.resume(name)
            lag = -1
            while time.monotonic() - resumed < timeout_s:
                time.sleep(every_s)
                cdc_n, published_n = _counts(settings, cdc, admin)
                curve.append((round(time.monotonic() - resumed, 2), cdc_n - base[0],
                              published_n - base[1]))
                # Done when the processor has read all the CDC topic holds, and that holds
                # every change committed (markers make it a little more) or stopped growing
                # (PostgreSQL's statistics also count a row change its transaction rolled back).
                stalled = len(curve) > STALLED and len({c for _, c, _ in curve[-STALLED:]}) == 1
                if curve[-1][1] >= committed or (curve[-1][1] > 0 and stalled):
                    lag = group_lag(settings, GROUP_ID, cdc)
                    if lag == 0:
                        break
        if lag != 0:
            say(f"not drained after {timeout_s:.0f} s")
    finally:
        for name in names:
            connect.resume(name)
        if processor is not None:
            processor.terminate()
            processor.wait(30)
    return CatchUpReport(
        backlog_s, committed, round(committed / generated_s), curve[-1][1] if curve else 0,
        curve[-1][2] if curve else 0, drain([(t, c) for t, c, _ in curve]),
        drain([(t, p) for t, _, p in curve]), lag, sampler.seconds(), sampler.machine(), curve)
