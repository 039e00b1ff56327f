"""`seatflow bench processor`: the runner against a plain copy of the same bytes, same machine."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from confluent_kafka import KafkaError

from pipelines.avro import RecordWriter, wire_header
from pipelines.avro.schemas import load_schema
from pipelines.bench.changes import produce_changes, scratch_config, scratch_outputs, synthetic_changes
from pipelines.kafka import clients
from pipelines.kafka.admin import ensure_topics
from pipelines.kafka.topics import SEAT_AVAILABILITY, TopicSpec
from pipelines.processor.aggregate import Availability
from pipelines.processor.config import RunStats
from pipelines.processor.core import SeatState
from pipelines.processor.runner import run_processor
from pipelines.settings import Settings


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


def _plain_copy(settings: Settings, source: str, target: str, count: int, *,
                transactional_id: str | None = None) -> float:
    """Consume and produce the same bytes, no decoding: the baseline. With a transactional id,
    one transaction per batch with its offsets, as the runner does: its floor."""
    consumer = clients.consumer(settings, group_id=f"bench-copy-{uuid.uuid4()}", **{
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "isolation.level": "read_committed"})
    producer = clients.producer(settings, **{
        "linger.ms": 5, "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000,
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
        "from pipelines.bench.processor import fill_state;"
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
    admin = clients.admin(settings)
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
