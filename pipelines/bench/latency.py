"""`seatflow bench latency`: commit-to-availability latency during an on-sale, split into
capture and processing, with where the CPU went."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
from confluent_kafka import TopicPartition

from pipelines.avro import AvroDecoder, registry_client
from pipelines.bench.common import run_cli
from pipelines.deploy import wait_caught_up
from pipelines.host.load import SIMULATOR_NICE
from pipelines.kafka import clients
from pipelines.kafka.groups import end_offsets
from pipelines.kafka.reading import next_records
from pipelines.kafka.topics import SEAT_AVAILABILITY, cdc_topic
from pipelines.processor.supervise import SUPERVISE_MODULE, WORKER_MODULE
from pipelines.settings import Settings
from pipelines.stats import percentile


@dataclass
class LatencyReport:
    rate_target: float
    # Published seat changes per second of the measured on-sale: the rate the simulator
    # reached (it slows down as the events sell out: `seatflow seed --reset` between runs).
    rate_published: float
    duration_s: float
    # An on-sale at the same rate just before, not measured: JVMs compile their hot code and
    # size their heaps under load (the first on-sale after a stack start is slower).
    warmup_s: float
    changes_published: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # The capture's share: commit to the CDC record readable (Debezium, Connect's transaction).
    capture_p50_ms: float
    capture_p99_ms: float
    # Of which Debezium's: commit to Debezium's own event time (the envelope's ts_ms), before
    # the record goes to Connect's converter, producer and transaction.
    debezium_p50_ms: float
    debezium_p99_ms: float
    # The processor's share: the CDC record readable to its availability record readable
    # (consume, process, produce and commit the transaction), change by change.
    processor_p50_ms: float
    processor_p99_ms: float
    # Where the machine's CPU went during the on-sale: seconds per process group.
    on_sale_seconds: float
    cpu_seconds: dict[str, float]
    # The whole machine over the on-sale: how much of its cores were busy (every process, not
    # only the groups above), and how much the hypervisor took (steal). Near 100 % busy, every
    # figure above includes waits for a core (docs/performance.md).
    machine: MachineLoad
    # The host's buyers' statements per transaction (group commit); 1: each its own.
    batch: int = 1


# The first needle a process's command line contains names its group.
_PROCESS_GROUPS = (
    ("kafka.Kafka", "kafka broker"), ("ConnectDistributed", "kafka connect"),
    ("apicurio", "registry"), ("quarkus", "registry"), ("postgres: walsender", "postgres walsender"),
    ("postgres", "postgres"), (" simulate ", "simulator"),
    (" processor run", "processor"), (WORKER_MODULE, "processor"),
    (SUPERVISE_MODULE, "processor"), ("dagster", "dagster"),
    ("bench latency", "this benchmark"),
)


def process_group(cmdline: str) -> str:
    """The group a process is counted in, by its command line."""
    return next((group for needle, group in _PROCESS_GROUPS if needle in cmdline), "other")


@dataclass(frozen=True)
class MachineLoad:
    cores: int
    busy_pct: float
    steal_pct: float


def machine_load(before: Any, after: Any) -> MachineLoad:
    """The machine's load between two `psutil.cpu_times()` readings. Counted as psutil's own
    cpu_percent counts: idle and iowait are not busy, and guest time is inside user already."""
    delta = {f: getattr(after, f) - getattr(before, f) for f in after._fields}
    total = sum(v for f, v in delta.items() if f not in ("guest", "guest_nice"))
    if total <= 0:
        return MachineLoad(psutil.cpu_count() or 1, 0.0, 0.0)
    idle = delta["idle"] + delta.get("iowait", 0.0)
    return MachineLoad(psutil.cpu_count() or 1, round(100 * (total - idle) / total, 1),
                       round(100 * delta.get("steal", 0.0) / total, 1))


class CpuSampler:
    """CPU seconds per process group over a span, every process sampled each half second
    (psutil); a process that ends between two samples loses at most its last half second."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._machine = (psutil.cpu_times(), psutil.cpu_times())

    def __enter__(self) -> CpuSampler:
        self._machine = (psutil.cpu_times(), self._machine[1])
        self._sample(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()
        self._machine = (self._machine[0], psutil.cpu_times())

    def machine(self) -> MachineLoad:
        """The whole machine's load over the span."""
        return machine_load(*self._machine)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def _sample(self, *, initial: bool = False) -> None:
        # A process gone or out of reach meanwhile comes with None for what could not be read.
        for proc in psutil.process_iter(["cmdline", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is None:
                continue
            seconds = times.user + times.system
            if proc.pid not in self._names:
                self._names[proc.pid] = " ".join(proc.info["cmdline"] or [])
                self._first[proc.pid] = seconds if initial else 0.0
            self._last[proc.pid] = seconds

    def seconds(self) -> dict[str, float]:
        groups: dict[str, float] = {}
        for pid, seconds in self._last.items():
            group = process_group(self._names[pid])
            groups[group] = groups.get(group, 0.0) + seconds - self._first[pid]
        return {g: round(v, 1) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])
                if v >= 0.1}


def bench_latency(settings: Settings, *, rate: float = 2000, duration: float = 30,
                  warmup: float = 30, start_processor: bool = True, batch: int = 1,
                  say: Callable[[str], None] = lambda _: None) -> LatencyReport:
    """Commit-to-availability latency under an on-sale: Debezium's commit time (source.ts_ms)
    to receipt by a read_committed consumer of seat-availability, each in its own process."""
    decoder = AvroDecoder(registry_client(settings))
    consumer = clients.consumer(settings, group_id=f"bench-latency-{uuid.uuid4()}", **{
        "enable.auto.commit": False, "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
    cdc = cdc_topic(settings, "seat_inventory")
    sources = AvroDecoder(decoder.registry,
                          projection={"ts_ms": None, "source": {"ts_ms": None, "snapshot": None},
                                      "after": {"event_id": None, "seat_id": None,
                                                "version": None}})
    processor = run_cli("processor", "run") if start_processor else None
    latencies: list[float] = []
    captured: list[float] = []
    in_debezium: list[float] = []
    in_processor: list[float] = []
    readable: dict[tuple[Any, ...], float] = {}  # (event, seat, version) -> CDC receipt
    try:
        say("waiting for Debezium to capture every change so far, and the processor to publish it")
        wait_caught_up(settings, timeout_s=300)
        if warmup > 0:
            say(f"warm-up: on-sale at {rate:.0f} changes/s for {warmup:.0f} s, not measured")
            run_cli("simulate", "--rate", str(rate), "--duration", str(warmup),
                    "--batch", str(batch), nice=SIMULATOR_NICE).wait(warmup + 120)
            wait_caught_up(settings, timeout_s=300)
        # From here on, only the on-sale's changes: not a backlog that was still flowing.
        consumer.assign([TopicPartition(topic, p, off) for topic in (SEAT_AVAILABILITY, cdc)
                         for p, off in end_offsets(settings, topic).items()])
        say(f"on-sale at {rate:.0f} changes/s for {duration:.0f} s")
        with CpuSampler() as sampler:
            started = time.monotonic()
            onsale = run_cli("simulate", "--rate", str(rate), "--duration", str(duration),
                             "--batch", str(batch), nice=SIMULATOR_NICE)
            deadline = started + duration + 60
            while time.monotonic() < deadline:
                for msg in next_records(consumer, 2000, 0.1):
                    received = time.time() * 1000
                    if msg.error() is not None or msg.value() is None:
                        continue
                    if msg.topic() == cdc:
                        envelope = sources.decode(msg.value())
                        source = envelope["source"]
                        if source["snapshot"] in (None, "false"):
                            captured.append(received - source["ts_ms"])
                            in_debezium.append(envelope["ts_ms"] - source["ts_ms"])
                            after = envelope["after"] or {}
                            readable[(after.get("event_id"), after.get("seat_id"),
                                      after.get("version"))] = received
                        continue
                    value = decoder.decode(msg.value())
                    if not value["snapshot"]:
                        committed = value["source_committed_at"].timestamp() * 1000
                        latencies.append(received - committed)
                        cdc_at = readable.pop((value["event_id"], value["seat_id"],
                                               value["source_version"]), None)
                        if cdc_at is not None:
                            in_processor.append(received - cdc_at)
                if onsale.poll() is not None and time.monotonic() > deadline - 55:
                    break
            onsale.wait(60)
        on_sale_seconds = time.monotonic() - started
    finally:
        consumer.close()
        if processor is not None:
            processor.terminate()
            processor.wait(30)
    if not latencies:
        raise RuntimeError("no seat change was published during the on-sale")
    for figures in (latencies, captured, in_debezium, in_processor):
        figures.sort()

    return LatencyReport(rate, round(len(latencies) / duration), duration, warmup, len(latencies),
                         percentile(latencies, 0.50),
                         percentile(latencies, 0.95), percentile(latencies, 0.99), round(latencies[-1], 1),
                         percentile(captured, 0.50), percentile(captured, 0.99),
                         percentile(in_debezium, 0.50), percentile(in_debezium, 0.99),
                         percentile(in_processor, 0.50), percentile(in_processor, 0.99),
                         round(on_sale_seconds, 1), sampler.seconds(), sampler.machine(), batch)
