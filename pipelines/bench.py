"""`seatflow bench processor`: the runner against a plain copy of the same bytes, same machine."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema

from pipelines.avro import AvroDecoder, RecordWriter, registry_client, wire_header
from pipelines.deploy import wait_caught_up
from pipelines.partitioning import event_partition
from pipelines.processor.aggregate import Availability
from pipelines.processor.config import ProcessorConfig, RunStats
from pipelines.processor.core import SeatState
from pipelines.processor.runner import run_processor
from pipelines.processor.supervise import SUPERVISE_MODULE, WORKER_MODULE
from pipelines.schemas import load_schema
from pipelines.settings import Settings
from pipelines.topics import (
    ANOMALIES,
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    SECTION_AVAILABILITY,
    TopicSpec,
    cdc_topic,
    end_offsets,
    ensure_topics,
    next_records,
)

__all__ = ["BenchReport", "LatencyReport", "bench_latency", "bench_processor", "produce_changes",
           "scratch_config", "scratch_outputs", "state_memory_mb", "synthetic_changes"]

NEXT = {"open": "held", "held": "sold", "sold": "open"}


@dataclass
class BenchReport:
    """Medians of `repeats` rounds; each round runs the plain copy, the exactly-once copy and
    the processor on the same preloaded topic, one after the other."""

    changes: int
    repeats: int
    # The runner's whole time, and its start-up within it (transactions initialised, the
    # state rebuilt, the reference data loaded) before it subscribes to its input.
    processor_seconds: float
    processor_startup_seconds: float
    # Changes per second from subscribing to the last commit: timed like the copies, which
    # start their clocks when they subscribe.
    processor_rate: float
    processor_busy_rate: float  # from the first record read to the last commit
    copy_rate: float
    # The same copy, exactly once: a transaction per batch with its offsets (the runner's floor).
    eos_copy_rate: float
    ratio: float  # processor_rate / copy_rate, median of the rounds' ratios
    ratios: list[float]  # every round's, in order
    ratio_with_startup: float  # the same with the processor's clock started before its start-up
    published: int
    dead_lettered: int
    state_memory_mb: float
    state_seats: int


def synthetic_changes(settings: Settings, count: int) -> tuple[int, list[tuple[int, bytes]]]:
    """`count` legal seat_inventory updates of real seats, encoded like Debezium's records,
    each with its event id; and how many seats they cycle through."""
    registry = registry_client(settings)
    subject = f"{cdc_topic(settings, 'seat_inventory')}-value"
    latest = registry.get_latest_version(subject)
    schema = json.loads(latest.schema.schema_str or "null")
    writer = RecordWriter(schema, header=wire_header(latest.schema_id or 0))
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        # Seat by seat across the events: any prefix of the changes spreads over every event
        # (and so over the partitions, which are by event).
        rows = conn.execute("SELECT event_id, seat_id, price_level_id, price FROM "
                            "ticketing.seat_inventory ORDER BY seat_id, event_id").fetchall()
    status = {(e, s): "open" for e, s, _, _ in rows}
    version = dict.fromkeys(status, 1)
    commit = datetime.now(UTC)
    out = []
    for i in range(count):
        event_id, seat_id, level, price = rows[i % len(rows)]
        key = (event_id, seat_id)
        before = {"status": status[key], "version": version[key]}
        status[key], version[key] = NEXT[status[key]], version[key] + 1
        held = status[key] == "held"
        row = {
            "event_id": event_id, "seat_id": seat_id, "price_level_id": level,
            "price": Decimal(price), "status": status[key],
            "hold_id": 1 if held else None,
            "hold_expires_at": (commit + timedelta(minutes=10)).isoformat() if held else None,
            "order_id": 1 if status[key] == "sold" else None,
            "version": version[key], "updated_at": commit.isoformat(),
        }
        envelope = {
            "before": {**row, **before}, "after": row, "op": "u",
            "ts_ms": int(commit.timestamp() * 1000), "transaction": None,
            "source": {"version": "3.6.1.Final", "connector": "postgresql", "name": "bench",
                       "ts_ms": int(commit.timestamp() * 1000), "snapshot": "false",
                       "db": "ticketing", "sequence": None, "schema": "ticketing",
                       "table": "seat_inventory", "txId": i, "lsn": i, "xmin": None,
                       "ts_us": None, "ts_ns": None},
        }
        out.append((event_id, writer.encode(_fill(schema, envelope))))
    return len(rows), out


def _fill(schema: Any, envelope: dict[str, Any]) -> dict[str, Any]:
    """Give every field Debezium's schema has, and this envelope lacks, a None."""
    for field in schema["fields"]:
        envelope.setdefault(field["name"], None)
    return envelope


def produce_changes(settings: Settings, topic: str, values: list[tuple[int, bytes]], *,
                    partitions: int = 1) -> None:
    """Write (event id, value) pairs into topic, each event in its partition as Debezium routes
    it (pipelines.partitioning)."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    for event_id, value in values:
        producer.produce(topic, value=value, partition=event_partition(event_id, partitions))
        producer.poll(0)
    producer.flush(60)


@contextmanager
def scratch_outputs(settings: Settings, prefix: str, *,
                    partitions: int = 1) -> Iterator[dict[str, str]]:
    """Output topics of a processor of its own (named prefix.<topic>), their schemas registered
    under their names; all deleted on exit."""
    outputs = {base: f"{prefix}.{base}" for base in (
        SEAT_AVAILABILITY, SECTION_AVAILABILITY, EVENT_AVAILABILITY, DEAD_LETTER, ANOMALIES)}
    registry = registry_client(settings)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    subjects = []
    try:
        ensure_topics(admin, [TopicSpec(t, partitions=1 if b == DEAD_LETTER else partitions)
                              for b, t in outputs.items()])
        for base, topic in outputs.items():
            for part in ("key", "value"):
                if base == DEAD_LETTER and part == "key":
                    continue
                registry.register_schema(f"{topic}-{part}",
                                         Schema(load_schema(f"{base}-{part}").text, "AVRO"))
                subjects.append(f"{topic}-{part}")
        yield outputs
    finally:
        admin.delete_topics(list(outputs.values()), request_timeout=30)
        for subject in subjects:
            registry.delete_subject(subject, permanent=False)
            registry.delete_subject(subject, permanent=True)


def _plain_copy(settings: Settings, source: str, target: str, count: int, *,
                transactional_id: str | None = None) -> float:
    """Consume and produce the same bytes, no decoding: the baseline. With a transactional id,
    one transaction per batch with its offsets, as the runner does: its floor."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"bench-copy-{uuid.uuid4()}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000,
                         **({"transactional.id": transactional_id} if transactional_id else {})})
    if transactional_id:
        producer.init_transactions(30)
    consumer.subscribe([source])
    copied = 0
    started = time.perf_counter()
    while copied < count:
        messages = consumer.consume(5000, timeout=1)
        if transactional_id and messages:
            producer.begin_transaction()
        for msg in messages:
            err = msg.error()
            if err is None:
                producer.produce(target, key=msg.key(), value=msg.value())
                copied += 1
            elif err.code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(str(err))
        producer.poll(0)
        if not messages:
            continue
        if transactional_id:
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
        else:
            consumer.commit(asynchronous=True)
    producer.flush(60)
    seconds = time.perf_counter() - started
    consumer.close()
    return seconds


def state_memory_mb(events: int, seats: int) -> tuple[float, int]:
    """Peak resident memory of a fresh process holding `events` x `seats` seats in state.

    Read from the process's own VmHWM: getrusage's ru_maxrss survives exec on Linux, so a
    child started by a big parent would report the parent's peak (the benchmark's own).
    """
    code = (
        "from pipelines.bench import fill_state;"
        f"n = fill_state({events}, {seats});"
        "kb = next(int(line.split()[1]) for line in open('/proc/self/status')"
        " if line.startswith('VmHWM:'));"
        "print(kb / 1024, n)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=300).stdout.split()
    return float(out[0]), int(out[1])


def fill_state(events: int, seats: int) -> int:
    """What the runner holds per seat, for every seat of `events` events: its availability and
    the encoded key it caches (for the memory figure)."""
    availability = Availability()
    key_writer = RecordWriter(json.loads(load_schema(f"{SEAT_AVAILABILITY}-key").text),
                              header=wire_header(1))
    keys: dict[tuple[int, int], bytes] = {}
    prices = [Decimal("45.00"), Decimal("85.00"), Decimal("150.00")]
    statuses = ["OPEN", "HELD", "SOLD"]
    for event_id in range(1, events + 1):
        for seat_id in range(1, seats + 1):
            level = seat_id % 3
            availability.put((event_id, seat_id), SeatState(
                seat_id % 7 + 1, statuses[seat_id % 3], f"{100 + seat_id // 800}", level,
                prices[level]))
            keys[(event_id, seat_id)] = key_writer.encode(
                {"event_id": event_id, "seat_id": seat_id})
    return len(availability.seats)


@dataclass
class _Round:
    copy_seconds: float
    eos_copy_seconds: float
    processor_seconds: float
    stats: RunStats


def bench_processor(settings: Settings, *, changes: int = 200_000, repeats: int = 3,
                    say: Callable[[str], None] = lambda _: None) -> BenchReport:
    run = f"bench-{uuid.uuid4().hex[:8]}"
    inputs = {name: f"{run}.{name}" for name in ("cdc", "copy", "eos-copy")}
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    rounds: list[_Round] = []
    try:
        ensure_topics(admin, [TopicSpec(t, partitions=1) for t in inputs.values()])
        say(f"encoding {changes:,} synthetic seat changes")
        seats, values = synthetic_changes(settings, changes)
        say(f"preloading {inputs['cdc']}")
        produce_changes(settings, inputs["cdc"], values)
        del values
        for i in range(repeats):
            say(f"round {i + 1} of {repeats}: plain copy, exactly-once copy, processor")
            copy_seconds = _plain_copy(settings, inputs["cdc"], inputs["copy"], changes)
            eos_seconds = _plain_copy(settings, inputs["cdc"], inputs["eos-copy"], changes,
                                      transactional_id=f"{run}-copy-{i}")
            # Each round's processor starts from nothing: outputs of its own (its state is
            # rebuilt from its seat topic), and a consumer group of its own.
            with scratch_outputs(settings, f"{run}.{i}") as out:
                config = scratch_config(inputs["cdc"], out, f"{run}-processor-{i}")
                started = time.perf_counter()
                stats = run_processor(settings, should_stop=lambda: False, until_end=True,
                                      config=config)
                rounds.append(_Round(copy_seconds, eos_seconds, time.perf_counter() - started,
                                     stats))
        say("state memory: 10 events x 60,000 seats")
        memory, state_seats = state_memory_mb(10, 60_000)
    finally:
        admin.delete_topics(list(inputs.values()), request_timeout=30)
    del seats

    def median(figure: Callable[[_Round], float]) -> float:
        return statistics.median(figure(r) for r in rounds)

    ratios = [round((r.stats.records_in / r.stats.run_seconds) / (changes / r.copy_seconds), 3)
              for r in rounds]
    last = rounds[-1].stats
    return BenchReport(
        changes=changes,
        repeats=repeats,
        processor_seconds=round(median(lambda r: r.processor_seconds), 2),
        processor_startup_seconds=round(median(
            lambda r: r.processor_seconds - r.stats.run_seconds), 2),
        processor_rate=round(median(lambda r: r.stats.records_in / r.stats.run_seconds)),
        processor_busy_rate=round(median(
            lambda r: r.stats.records_in / max(r.stats.busy_seconds, 1e-9))),
        copy_rate=round(median(lambda r: changes / r.copy_seconds)),
        eos_copy_rate=round(median(lambda r: changes / r.eos_copy_seconds)),
        ratio=round(statistics.median(ratios), 3),
        ratios=ratios,
        ratio_with_startup=round(median(
            lambda r: (r.stats.records_in / r.processor_seconds) / (changes / r.copy_seconds)), 3),
        published=last.records_out,
        dead_lettered=last.dead_lettered,
        state_memory_mb=round(memory, 1),
        state_seats=state_seats,
    )


def scratch_config(source: str, outputs: dict[str, str], name: str, *,
                   slot: int | None = None, partitions: int | None = None) -> ProcessorConfig:
    """A processor of source into scratch outputs: no reference topics, a group of its own;
    `slot` numbers its instances (their transactional ids)."""
    return ProcessorConfig(
        seat_inventory_topic=source, reference_topics={},
        seat_topic=outputs[SEAT_AVAILABILITY], section_topic=outputs[SECTION_AVAILABILITY],
        event_topic=outputs[EVENT_AVAILABILITY], dead_letter_topic=outputs[DEAD_LETTER],
        anomaly_topic=outputs[ANOMALIES], group_id=name,
        transactional_id=name if slot is None else f"{name}-{slot}", partitions=partitions)


def report_dict(report: BenchReport) -> dict[str, Any]:
    return asdict(report)


@dataclass
class LatencyReport:
    rate_target: float
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


class CpuSampler:
    """CPU seconds per process group over a span, read from /proc every half second (Linux);
    a process that ends between two reads loses at most its last half second."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._sample(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def _sample(self, *, initial: bool = False) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                ticks = int(stat[11]) + int(stat[12])  # utime + stime
                if entry.name not in self._names:
                    self._names[entry.name] = Path(entry.path, "cmdline").read_bytes().replace(
                        b"\0", b" ").decode(errors="replace")
                    self._first[entry.name] = ticks if initial else 0
                self._last[entry.name] = ticks
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile

    def seconds(self) -> dict[str, float]:
        per_tick = 1 / os.sysconf("SC_CLK_TCK")
        groups: dict[str, float] = {}
        for pid, ticks in self._last.items():
            group = process_group(self._names[pid])
            groups[group] = groups.get(group, 0.0) + (ticks - self._first[pid]) * per_tick
        return {g: round(v, 1) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])
                if v >= 0.1}


def _seatflow(*args: str, nice: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*(["nice", "-n", str(nice)] if nice else []),
                             sys.executable, "-m", "pipelines.cli.main", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# The simulator stands in for the fans' apps, which run on other machines. Here it shares the 2
# cores with what it measures, so it runs at a lower priority: it still makes its rate (see
# changes_published), but no longer delays Connect, Kafka and the processor (docs/performance.md).
# Its queries run in PostgreSQL's backends, at their usual priority.
SIMULATOR_NICE = 10


def bench_latency(settings: Settings, *, rate: float = 2000, duration: float = 30,
                  warmup: float = 30, start_processor: bool = True,
                  say: Callable[[str], None] = lambda _: None) -> LatencyReport:
    """Commit-to-availability latency under an on-sale: Debezium's commit time (source.ts_ms)
    to receipt by a read_committed consumer of seat-availability, each in its own process."""
    decoder = AvroDecoder(registry_client(settings))
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"bench-latency-{uuid.uuid4()}", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
    cdc = cdc_topic(settings, "seat_inventory")
    sources = AvroDecoder(decoder.registry,
                          projection={"ts_ms": None, "source": {"ts_ms": None, "snapshot": None},
                                      "after": {"event_id": None, "seat_id": None,
                                                "version": None}})
    processor = _seatflow("processor", "run") if start_processor else None
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
            _seatflow("simulate", "--rate", str(rate), "--duration", str(warmup),
                      nice=SIMULATOR_NICE).wait(warmup + 120)
            wait_caught_up(settings, timeout_s=300)
        # From here on, only the on-sale's changes: not a backlog that was still flowing.
        consumer.assign([TopicPartition(topic, p, off) for topic in (SEAT_AVAILABILITY, cdc)
                         for p, off in end_offsets(settings.kafka_bootstrap, topic).items()])
        say(f"on-sale at {rate:.0f} changes/s for {duration:.0f} s")
        with CpuSampler() as sampler:
            started = time.monotonic()
            onsale = _seatflow("simulate", "--rate", str(rate), "--duration", str(duration),
                               nice=SIMULATOR_NICE)
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

    def pct(values: list[float], p: float) -> float:
        return round(values[min(int(len(values) * p), len(values) - 1)], 1) if values else 0.0

    return LatencyReport(rate, duration, warmup, len(latencies), pct(latencies, 0.50),
                         pct(latencies, 0.95), pct(latencies, 0.99), round(latencies[-1], 1),
                         pct(captured, 0.50), pct(captured, 0.99),
                         pct(in_debezium, 0.50), pct(in_debezium, 0.99),
                         pct(in_processor, 0.50), pct(in_processor, 0.99),
                         round(on_sale_seconds, 1), sampler.seconds())
