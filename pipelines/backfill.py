"""Backfills: re-create one event's availability from the source of truth, stream running.

Two ways, both through the same processor (the single writer of the availability topics):

- `debezium` asks the connector for an ad-hoc incremental snapshot of the event's
  seat_inventory rows (an `execute-snapshot` signal with an additional condition). Debezium
  de-duplicates the snapshot chunks against the stream with its watermarks.
- `database` reads the event's rows with a server-side cursor and produces them into the CDC
  topic as snapshot (`r`) records, encoded with the registered writer schema: for when Connect
  is down or the CDC topics were compacted. Row versions keep an older row from overwriting a
  newer streamed change (the processor publishes a snapshot row only at or above the version
  it has seen).

Either way the backfill is done when every seat of the event has a record in the CDC topic
since the backfill began (its snapshot row, or a newer streamed change that replaced it) and
the processor has committed past them all.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipelines.avro import AvroDecoder, RecordWriter, WireFormatError, registry_client, wire_header
from pipelines.backfill_events import (
    covered_seat,
    lsn_int,
    row_image,
    snapshot_envelope,
    snapshot_signal,
)
from pipelines.connect import ConnectClient
from pipelines.connect.errors import ConnectError
from pipelines.errors import SeatflowError
from pipelines.kafka import clients
from pipelines.kafka.groups import end_offsets, group_members
from pipelines.kafka.topics import cdc_topic
from pipelines.partitioning import event_partition
from pipelines.polling import PollTimeoutError, poll
from pipelines.processor.config import GROUP_ID
from pipelines.settings import Settings

__all__ = [
    "METHODS",
    "BackfillError",
    "BackfillReport",
    "Method",
    "Progress",
    "backfill_event",
]

log = logging.getLogger(__name__)

Method = Literal["debezium", "database"]
METHODS: tuple[Method, ...] = ("debezium", "database")
# One backfill at a time (a second execute-snapshot would join the first one's queue): a
# session-level advisory lock on the ticketing host, released when its connection closes.
_LOCK_ID = 0x5EA7F10B
_PROGRESS_EVERY_S = 1.0


class BackfillError(SeatflowError, RuntimeError):
    """A backfill cannot start or did not finish; the message says why and what to do."""

    # `seatflow backfill event`: 1 is kept for differences found by the reconciliation after it.
    exit_code = 2


@dataclass(frozen=True)
class Progress:
    """Where a running backfill is: seats covered since it began, of the event's seats."""

    seats: int
    covered: int
    rows: int  # snapshot rows of the event seen in the CDC topic
    streamed: int  # streamed changes of the event seen meanwhile
    seconds: float

    @property
    def seats_per_second(self) -> float:
        return self.covered / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class BackfillReport:
    event_id: int
    method: Method
    seats: int
    rows: int  # snapshot rows of the event that reached the CDC topic
    streamed: int  # streamed changes of the event during the backfill
    capture_seconds: float  # until every seat had a record in the CDC topic
    seconds: float  # until the processor had published them all
    signal_id: str | None = None

    @property
    def seats_per_second(self) -> float:
        return self.seats / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "method": self.method, "seats": self.seats,
                "rows": self.rows, "streamed": self.streamed,
                "capture_seconds": round(self.capture_seconds, 2),
                "seconds": round(self.seconds, 2),
                "seats_per_second": round(self.seats_per_second),
                "signal_id": self.signal_id}


# ---- I/O --------------------------------------------------------------------------------------

def event_seat_ids(settings: Settings, event_id: int) -> set[int]:
    """The event's seats; fails clearly when there is no such event."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM ticketing.events WHERE event_id = %s",
                        (event_id,)).fetchone() is None:
            raise BackfillError(f"event {event_id} does not exist in ticketing.events")
        rows = conn.execute("SELECT seat_id FROM ticketing.seat_inventory WHERE event_id = %s",
                            (event_id,)).fetchall()
    return {r[0] for r in rows}


@contextmanager
def _exclusive(settings: Settings, *, timeout_s: float,
               say: Callable[[str], None]) -> Iterator[None]:
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10, autocommit=True) as conn:
        def locked() -> bool:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_ID,)).fetchone()
            return bool(row and row[0])

        told: list[bool] = []

        def tell(_: bool) -> None:
            if not told:
                say("another backfill is running; waiting for it to end")
                told.append(True)

        try:
            poll(locked, until=bool, timeout_s=timeout_s, on_wait=tell)
        except PollTimeoutError as e:
            raise BackfillError(f"another backfill held the lock for {timeout_s:.0f} s") from e
        yield  # the lock goes with the connection


def _connector_running(settings: Settings) -> None:
    try:
        status = ConnectClient.from_settings(settings, retries=1).status(settings.connector_name)
    except ConnectError as e:
        raise BackfillError(f"Kafka Connect is not reachable ({e}); "
                            "use --method database to backfill without it") from e
    if status is None:
        raise BackfillError(f"connector {settings.connector_name} is not deployed "
                            "(seatflow connectors apply), or use --method database")
    states = {status["connector"]["state"], *(t["state"] for t in status.get("tasks", []))}
    if states != {"RUNNING"}:
        raise BackfillError(f"connector {settings.connector_name} is not running "
                            f"({', '.join(sorted(states))}); resume it, or use --method database")


def _send_signal(settings: Settings, event_id: int) -> str:
    signal_id = str(uuid.uuid4())
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10, autocommit=True) as conn:
        conn.execute("INSERT INTO ticketing.debezium_signal (id, type, data)"
                     " VALUES (%s, 'execute-snapshot', %s)",
                     (signal_id, json.dumps(snapshot_signal(event_id))))
    return signal_id


class _Writer:
    """Encodes rows with the CDC topic's registered writer schemas, in the wire format."""

    def __init__(self, settings: Settings, topic: str) -> None:
        registry = registry_client(settings)
        try:
            key = registry.get_latest_version(f"{topic}-key")
            value = registry.get_latest_version(f"{topic}-value")
        except SchemaRegistryError as e:
            raise BackfillError(f"no schema registered for {topic} ({e}); the connector has "
                                "never written it") from e
        self._key = RecordWriter(json.loads(key.schema.schema_str or "null"),
                                 header=wire_header(key.schema_id or 0))
        self._value = RecordWriter(json.loads(value.schema.schema_str or "null"),
                                   header=wire_header(value.schema_id or 0))

    def key(self, record: dict[str, Any]) -> bytes:
        return self._key.encode(record)

    def value(self, record: dict[str, Any]) -> bytes:
        return self._value.encode(record)


def _republish(settings: Settings, event_id: int, topic: str) -> int:
    """Produce the event's rows into the CDC topic as snapshot records; returns how many."""
    writer = _Writer(settings, topic)
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = clients.producer(settings, **{"enable.idempotence": True, "linger.ms": 20,
                                             "compression.type": "lz4",
                                             "queue.buffering.max.messages": 500_000})
    count = 0
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        # One snapshot for the position and the rows: every change the rows show was committed
        # at or before that position's snapshot.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        position = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        read_at = lsn_int(position[0]) if position else None
        partition = event_partition(event_id, settings.partitions)
        cur = conn.cursor(name=f"backfill_{event_id}")
        cur.itersize = 5000
        cur.execute("SELECT * FROM ticketing.seat_inventory WHERE event_id = %s ORDER BY seat_id",
                    (event_id,))
        names: list[str] | None = None
        for values in cur:
            if names is None:
                names = [d.name for d in cur.description or []]
            after = row_image(names, values)
            # The row version's own commit time (updated_at), not the read time: a hold is
            # judged against when it was written.
            committed = int(values[names.index("updated_at")].timestamp() * 1000)
            envelope = snapshot_envelope(after, server=settings.topic_prefix,
                                         committed_at_ms=committed, lsn=read_at)
            key = writer.key({"event_id": after["event_id"], "seat_id": after["seat_id"]})
            while True:
                try:
                    # The partition Debezium's PartitionRouting gives the event's changes: the
                    # backfill's rows must sit in order among them.
                    producer.produce(topic, key=key, value=writer.value(envelope),
                                     partition=partition, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.1)
            count += 1
            if count % 1000 == 0:
                producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise BackfillError(f"{remaining + len(failures)} of {count} rows not delivered to "
                            f"{topic}: {failures[:3]}")
    return count


class _Watch:
    """Follows the CDC topic from the backfill's start: which of the event's seats it covered."""

    def __init__(self, settings: Settings, topic: str, start: dict[int, int]) -> None:
        self.decoder = AvroDecoder(registry_client(settings))
        self.consumer = clients.consumer(settings, group_id=f"seatflow-backfill-{uuid.uuid4()}", **{
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 52_428_800,
        })
        self.consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])

    def read(self, event_id: int, remaining: set[int], *, timeout: float) -> tuple[int, int, int]:
        """Consume what is there; returns (records read, snapshot rows, streamed changes)."""
        read = rows = streamed = 0
        for msg in self.consumer.consume(10_000, timeout=timeout):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise BackfillError(f"reading the CDC topic failed: {err}")
                continue
            read += 1
            if msg.value() is None:
                continue
            try:
                envelope = self.decoder.decode(msg.value())
            except WireFormatError:
                continue  # the processor dead-letters it; it covers no seat
            seat = covered_seat(envelope, event_id) if isinstance(envelope, dict) else None
            if seat is not None:
                remaining.discard(seat[0])
                if seat[1]:
                    rows += 1
                else:
                    streamed += 1
        return read, rows, streamed

    def close(self) -> None:
        self.consumer.close()


def _wait_published(settings: Settings, topic: str, target: dict[int, int], *,
                    deadline: float) -> None:
    """Wait until the processor has committed every record before `target`."""
    consumer = clients.consumer(settings, group_id=GROUP_ID, **{"enable.auto.commit": False})
    idle_since: float | None = None
    checked = 0.0
    try:
        while True:
            committed = consumer.committed([TopicPartition(topic, p) for p in target], timeout=10)
            # A partition the group never committed (nothing to read in it) counts as 0.
            if all(max(tp.offset, 0) >= target[tp.partition] for tp in committed):
                return
            if time.monotonic() - checked < 5:
                pass
            elif group_members(settings, GROUP_ID) == 0:
                checked = time.monotonic()
                idle_since = idle_since or checked
                if checked - idle_since > 30:
                    raise BackfillError("no processor is running (seatflow processor run, or "
                                        "the availability_stream job): the rows wait in the "
                                        "CDC topic")
            else:
                checked, idle_since = time.monotonic(), None
            if time.monotonic() > deadline:
                raise BackfillError("the processor has not published the backfill in time")
            time.sleep(0.2)
    finally:
        consumer.close()


def backfill_event(settings: Settings, event_id: int, *, method: Method = "debezium",
                   timeout_s: float = 600, stall_s: float = 120,
                   progress: Callable[[Progress], None] = lambda _: None,
                   say: Callable[[str], None] = lambda _: None) -> BackfillReport:
    """Backfill one event's availability and wait until the processor has published it."""
    if method not in METHODS:
        raise BackfillError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    seats = event_seat_ids(settings, event_id)
    topic = cdc_topic(settings, "seat_inventory")
    if method == "debezium":
        _connector_running(settings)
    with _exclusive(settings, timeout_s=timeout_s, say=say):
        start = end_offsets(settings, topic)
        if not start:
            raise BackfillError(f"topic {topic} does not exist")
        watch = _Watch(settings, topic, start)
        started = time.monotonic()
        deadline = started + timeout_s
        signal_id = None
        try:
            if method == "debezium":
                signal_id = _send_signal(settings, event_id)
                say(f"signal {signal_id}: incremental snapshot of event {event_id} "
                    f"({len(seats):,} seats)")
            else:
                produced = _republish(settings, event_id, topic)
                say(f"{produced:,} rows of event {event_id} produced into {topic} in "
                    f"{time.monotonic() - started:.1f} s")
            remaining = set(seats)
            rows = streamed = 0
            last_report = last_record = time.monotonic()
            while remaining:
                read, r, s = watch.read(event_id, remaining, timeout=0.5)
                rows, streamed = rows + r, streamed + s
                now = time.monotonic()
                if read:
                    last_record = now
                if now - last_report >= _PROGRESS_EVERY_S:
                    last_report = now
                    progress(Progress(len(seats), len(seats) - len(remaining), rows, streamed,
                                      now - started))
                if now > deadline or now - last_record > stall_s:
                    raise BackfillError(
                        f"backfill of event {event_id} stalled: {len(seats) - len(remaining):,} "
                        f"of {len(seats):,} seats captured after {now - started:.0f} s"
                        + (" (is the connector running? seatflow connectors status)"
                           if method == "debezium" else ""))
        finally:
            watch.close()
        captured = time.monotonic() - started
        progress(Progress(len(seats), len(seats), rows, streamed, captured))
        _wait_published(settings, topic, end_offsets(settings, topic),
                        deadline=deadline)
    return BackfillReport(event_id, method, len(seats), rows, streamed, captured,
                          time.monotonic() - started, signal_id)
