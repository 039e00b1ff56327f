"""Synthetic seat changes in the CDC wire format, loaded into scratch topics, and the scratch
outputs a benchmark's processor writes to (`bench processor`, `bench scale`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from confluent_kafka.schema_registry import Schema

from pipelines.avro import RecordWriter, registry_client, wire_header
from pipelines.avro.schemas import load_schema
from pipelines.kafka import clients
from pipelines.kafka.admin import ensure_topics
from pipelines.kafka.topics import (
    ANOMALIES,
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    SECTION_AVAILABILITY,
    TopicSpec,
    cdc_topic,
)
from pipelines.partitioning import event_partition
from pipelines.processor.config import ProcessorConfig
from pipelines.settings import Settings

NEXT = {"open": "held", "held": "sold", "sold": "open"}


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
    producer = clients.producer(settings, **{"linger.ms": 20, "compression.type": "lz4",
                                             "queue.buffering.max.messages": 1_000_000})
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
    admin = clients.admin(settings)
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
