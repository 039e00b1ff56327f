"""Reading the processor's input: each CDC record's bytes become a seat change, a reference
change, a truncate, a dead letter's reason, or nothing (a tombstone)."""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipelines.avro import MAGIC, AvroDecoder, RecordWriter
from pipelines.processor.codec import RecordDecoder
from pipelines.processor.core import ENVELOPE_FIELDS, SeatChange
from pipelines.processor.engine import ReferenceChange, Truncate, Undecodable

# Decoded by each codec in turn (the records below are written once, alike by either).
pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("codec")]

ENVELOPE = json.loads((Path(__file__).parent / "data" / "seat_inventory_envelope.avsc").read_text())
SCHEMA_ID, STRING_ID = 7, 8
SEATS, SECTIONS = "cdc.ticketing.seat_inventory", "cdc.ticketing.sections"
WRITER = RecordWriter(ENVELOPE, header=struct.pack(">bI", MAGIC, SCHEMA_ID))


class Registry:
    """Knows two schemas: the envelope of seat_inventory, and a plain string."""

    def get_schema(self, schema_id: int) -> Schema:
        schema = {SCHEMA_ID: ENVELOPE, STRING_ID: "string"}.get(schema_id)
        if schema is None:
            raise SchemaRegistryError(404, 40403, f"schema {schema_id} not found")
        return Schema(json.dumps(schema), "AVRO")


class Msg:
    def __init__(self, value: bytes | None, topic: str = SEATS) -> None:
        self._value, self._topic = value, topic

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes | None:
        return self._value


def decoder() -> RecordDecoder:
    registry: Any = Registry()
    return RecordDecoder(AvroDecoder(registry), AvroDecoder(registry, projection=ENVELOPE_FIELDS),
                         {SECTIONS: "sections"})


def envelope(op: str, *, status: str = "open", ts_ms: int = 1_000) -> bytes:
    row = {"event_id": 1, "seat_id": 2, "price_level_id": 3, "price": Decimal("50.00"),
           "status": status, "hold_id": None, "hold_expires_at": None, "order_id": None,
           "version": 4, "updated_at": "2030-01-01T00:00:00Z"}
    return WRITER.encode({
        "before": row if op in ("u", "d") else None, "after": row if op in ("c", "u") else None,
        "source": {"version": "3", "connector": "postgresql", "name": "cdc", "ts_ms": ts_ms,
                   "snapshot": "false", "db": "ticketing", "sequence": None, "ts_us": None,
                   "ts_ns": None, "schema": "ticketing", "table": "seat_inventory", "txId": None,
                   "lsn": 99, "xmin": None, "origin": None, "origin_lsn": None},
        "transaction": None, "op": op, "ts_ms": None, "ts_us": None, "ts_ns": None})


def read(value: bytes | None, topic: str = SEATS) -> Any:
    return decoder().decode(Msg(value, topic))


def test_a_seat_inventory_change_is_a_seat_change() -> None:
    change = read(envelope("u", status="held"))
    assert isinstance(change, SeatChange)
    assert (change.op, change.event_id, change.seat_id, change.status, change.version,
            change.lsn, change.committed_at_ms) == ("u", 1, 2, "HELD", 4, 99, 1_000)


def test_a_delete_is_read_from_its_before_image_and_its_tombstone_is_nothing() -> None:
    change = read(envelope("d"))
    assert isinstance(change, SeatChange) and change.status is None and change.version == 4
    assert read(None) is None


def test_a_reference_tables_change_comes_whole_with_its_table() -> None:
    change = read(envelope("c"), SECTIONS)
    assert isinstance(change, ReferenceChange) and change.table == "sections"
    assert change.envelope["after"]["updated_at"] == "2030-01-01T00:00:00Z"  # not projected


def test_a_truncate_is_a_truncate() -> None:
    truncate = read(envelope("t"))
    assert isinstance(truncate, Truncate) and truncate.envelope["source"]["lsn"] == 99


@pytest.mark.parametrize(("value", "reason"), [
    (b"not avro", "undecodable"),  # no wire-format header
    (struct.pack(">bI", MAGIC, SCHEMA_ID) + b"\xff", "undecodable"),  # a body cut short
    (struct.pack(">bI", MAGIC, 9) + b"\x00", "unknown_schema"),
    (envelope("x"), "bad_op"),
    (envelope("u", status="lost"), "bad_status"),
    (RecordWriter("string", header=struct.pack(">bI", MAGIC, STRING_ID)).encode("x"),
     "not_a_record"),
], ids=["no-header", "short-body", "unknown-schema", "bad-op", "bad-status", "not-a-record"])
def test_bytes_that_are_no_change_are_dead_lettered_with_the_reason(value: bytes,
                                                                     reason: str) -> None:
    dead = read(value)
    assert isinstance(dead, Undecodable) and dead.reason == reason
    assert isinstance(dead.error, ValueError)
