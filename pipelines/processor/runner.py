"""The processor's I/O: read seat-inventory changes, publish seat availability, exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from pipelines.avro import AvroDecoder, AvroEncoder, WireFormatError
from pipelines.processor.core import (
    ChangeError,
    ReferenceData,
    SeatRef,
    availability_key,
    availability_value,
    decode_seat_change,
)
from pipelines.schemas import load_schema
from pipelines.settings import Settings
from pipelines.topics import DEAD_LETTER, SEAT_AVAILABILITY, cdc_topic

__all__ = ["BatchStats", "ProcessorError", "RunStats", "load_reference", "run_processor"]

log = logging.getLogger(__name__)

GROUP_ID = "seatflow-availability"


class ProcessorError(RuntimeError):
    """The processor cannot go on (a fatal Kafka error, a missing schema)."""


@dataclass
class BatchStats:
    records_in: int = 0
    records_out: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    max_latency_ms: float = 0.0


@dataclass
class RunStats:
    batches: int = 0
    records_in: int = 0
    records_out: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    aborted: int = 0
    last_batch: BatchStats = field(default_factory=BatchStats)

    def add(self, batch: BatchStats) -> None:
        self.batches += 1
        self.records_in += batch.records_in
        self.records_out += batch.records_out
        self.dead_lettered += batch.dead_lettered
        self.skipped += batch.skipped
        self.last_batch = batch


def load_reference(settings: Settings) -> ReferenceData:
    """Seats and price levels from the ticketing host, for enrichment."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.seat_id, sec.code, s.row_label, s.seat_number"
            " FROM ticketing.seats s JOIN ticketing.sections sec USING (section_id)"
        )
        seats = {seat_id: SeatRef(code, row, number) for seat_id, code, row, number in cur}
        cur.execute("SELECT price_level_id, code FROM ticketing.price_levels")
        levels = {level_id: code for level_id, code in cur}
    return ReferenceData(seats=seats, price_levels=levels)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def run_processor(
    settings: Settings,
    *,
    should_stop: Callable[[], bool],
    until_end: bool = False,
    batch_size: int = 2000,
    batch_timeout_s: float = 0.05,
    instance: int = 0,
    on_batch: Callable[[BatchStats], None] | None = None,
) -> RunStats:
    """Process changes until should_stop() is true (or, with until_end, the input's end)."""
    registry = SchemaRegistryClient({"url": settings.ccompat_url, "timeout": 10})
    decoder = AvroDecoder(registry)
    # The deploy registers schemas; the processor only looks them up, and fails if they differ.
    try:
        codec = Codec(
            decoder,
            AvroEncoder(registry, f"{SEAT_AVAILABILITY}-key",
                        load_schema(f"{SEAT_AVAILABILITY}-key").text),
            AvroEncoder(registry, f"{SEAT_AVAILABILITY}-value",
                        load_schema(f"{SEAT_AVAILABILITY}-value").text),
        )
    except WireFormatError as e:
        raise ProcessorError(str(e)) from e
    reference = load_reference(settings)
    in_topic = cdc_topic(settings, "seat_inventory")

    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": GROUP_ID,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    producer = Producer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "transactional.id": f"{GROUP_ID}-{instance}",
        "linger.ms": 2,
        "compression.type": "lz4",
    })
    stats = RunStats()
    eof: set[tuple[str, int]] = set()
    try:
        producer.init_transactions(30)
        consumer.subscribe([in_topic])
        while not should_stop():
            messages = consumer.consume(num_messages=batch_size, timeout=batch_timeout_s)
            records = []
            for msg in messages:
                err = msg.error()
                position = (str(msg.topic()), int(msg.partition() or 0))
                if err is None:
                    records.append(msg)
                    eof.discard(position)
                elif err.code() == KafkaError._PARTITION_EOF:
                    eof.add(position)
                elif err.fatal():
                    raise ProcessorError(f"consumer failed: {err}")
                else:
                    log.warning("consumer: %s", err)
            if records:
                batch = _process_batch(records, producer, consumer, codec, reference)
                if batch is None:
                    stats.aborted += 1
                else:
                    stats.add(batch)
                    if on_batch:
                        on_batch(batch)
            if until_end and not records and eof and len(eof) >= len(consumer.assignment() or [1]):
                break
    finally:
        consumer.close()
        producer.flush(10)
    return stats


@dataclass(frozen=True)
class Codec:
    """Decodes CDC records; encodes seat-availability keys and values."""

    decoder: AvroDecoder
    key: AvroEncoder
    value: AvroEncoder


def _process_batch(
    records: list[Message],
    producer: Producer,
    consumer: Consumer,
    codec: Codec,
    reference: ReferenceData,
) -> BatchStats | None:
    """One transaction: publish the batch and commit its offsets; None when it was aborted."""
    batch = BatchStats(records_in=len(records))
    producer.begin_transaction()
    try:
        published_at = _now_ms()
        for msg in records:
            raw = msg.value()
            if raw is None:  # Debezium's tombstone after a delete; the delete itself was published
                batch.skipped += 1
                continue
            try:
                envelope = codec.decoder.decode(raw)
                if not isinstance(envelope, dict):
                    raise ChangeError("not_a_record", f"decoded to {type(envelope).__name__}")
                change = decode_seat_change(envelope)
            except ChangeError as e:
                _dead_letter(producer, msg, e.reason, str(e))
                batch.dead_lettered += 1
                continue
            except Exception as e:  # undecodable bytes, unknown schema id
                _dead_letter(producer, msg, "undecodable", f"{type(e).__name__}: {e}")
                batch.dead_lettered += 1
                continue
            value = availability_value(change, reference, published_at_ms=published_at)
            producer.produce(
                SEAT_AVAILABILITY,
                key=codec.key.encode(availability_key(change)),
                value=codec.value.encode(value) if value is not None else None,
            )
            batch.records_out += 1
            batch.max_latency_ms = max(batch.max_latency_ms, published_at - change.committed_at_ms)
            producer.poll(0)
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)
        return batch
    except KafkaException as e:
        error = e.args[0]
        if error.fatal() or not error.txn_requires_abort():
            raise ProcessorError(f"transaction failed and cannot be retried: {error}") from e
        log.warning("aborting batch of %d: %s", len(records), error)
        producer.abort_transaction(30)
        _rewind(consumer)
        return None


def _rewind(consumer: Consumer) -> None:
    """Seek every assigned partition back to the group's last committed offset."""
    for tp in consumer.committed(consumer.assignment(), timeout=30):
        consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))


def _dead_letter(producer: Producer, msg: Message, reason: str, message: str) -> None:
    headers: list[tuple[str, str | bytes | None]] = [
        ("seatflow.reason", reason.encode()),
        ("seatflow.error", message.encode()[:2000]),
        ("seatflow.source.topic", str(msg.topic()).encode()),
        ("seatflow.source.partition", str(msg.partition()).encode()),
        ("seatflow.source.offset", str(msg.offset()).encode()),
    ]
    producer.produce(DEAD_LETTER, key=msg.key(), value=msg.value(), headers=headers)
