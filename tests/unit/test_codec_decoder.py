"""Each codec's ProjectingDecoder (seatflow_native's, pipelines.avro.pure's: the `codec` fixture)
reads what fastavro reads, whole or projected, and refuses bytes that do not match."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.avro.schemas import load_schema
from pipelines.processor.core import ENVELOPE_FIELDS, decode_seat_change
from pipelines.processor.published import SEAT_STATE_FIELDS
from tests.unit.avro_values import values

pytestmark = pytest.mark.unit

ENVELOPE = json.loads((Path(__file__).parent / "data" / "seat_inventory_envelope.avsc").read_text())
# Every Avro type but the logical types fastavro turns into objects of their own.
EVERY_TYPE = {
    "type": "record", "name": "Every", "namespace": "t", "fields": [
        {"name": "b", "type": "boolean"}, {"name": "i", "type": "int"},
        {"name": "l", "type": "long"}, {"name": "f", "type": "float"},
        {"name": "d", "type": "double"}, {"name": "s", "type": "string"},
        {"name": "y", "type": "bytes"}, {"name": "n", "type": "null"},
        {"name": "x", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "e", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "BLUE"]}},
        {"name": "a", "type": {"type": "array", "items": ["null", "long", "string"]}},
        {"name": "m", "type": {"type": "map", "values": "Colour"}},
        {"name": "r", "type": ["null", {"type": "record", "name": "Inner", "fields": [
            {"name": "p", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12,
                                   "scale": 3}},
            {"name": "q", "type": {"type": "fixed", "name": "Dec", "size": 6,
                                   "logicalType": "decimal", "precision": 12, "scale": 2}},
            {"name": "again", "type": ["null", "Four"]}]}]},
        {"name": "r2", "type": ["null", "t.Inner"]},
    ]}


def fastavro_round_trip(schema: Any, record: Any) -> tuple[bytes, Any]:
    parsed = fastavro.parse_schema(schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, record)
    body = buf.getvalue()
    return body, fastavro.schemaless_reader(io.BytesIO(body), parsed, None)


def project(value: Any, projection: Any) -> Any:
    if projection is None or not isinstance(value, dict):
        return value
    return {k: project(v, projection[k]) for k, v in value.items() if k in projection}


@pytest.mark.parametrize("schema", [ENVELOPE, EVERY_TYPE], ids=["envelope", "every-type"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_whole_records_read_as_fastavro_reads_them(codec: ModuleType, schema: Any,
                                                   data: st.DataObject) -> None:
    body, expected = fastavro_round_trip(schema, data.draw(values(schema)))
    assert codec.ProjectingDecoder(json.dumps(schema)).decode(body) == expected


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_projection_keeps_only_the_fields_it_names(codec: ModuleType,
                                                    data: st.DataObject) -> None:
    body, expected = fastavro_round_trip(ENVELOPE, data.draw(values(ENVELOPE)))
    projected = codec.ProjectingDecoder(json.dumps(ENVELOPE), ENVELOPE_FIELDS).decode(body)
    assert projected == project(expected, ENVELOPE_FIELDS)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_projection_skips_the_timestamps_it_leaves_out(codec: ModuleType,
                                                        data: st.DataObject) -> None:
    """The state's fields of a seat-availability record are read natively: its timestamps,
    which the decoder cannot build, are only skipped."""
    schema = json.loads(load_schema("seat-availability-value").text)
    body, expected = fastavro_round_trip(schema, data.draw(values(schema)))
    projected = codec.ProjectingDecoder(json.dumps(schema), SEAT_STATE_FIELDS).decode(body)
    assert projected == project(expected, SEAT_STATE_FIELDS)


def test_the_projected_envelope_is_all_decode_seat_change_reads(codec: ModuleType) -> None:
    after = {"event_id": 7, "seat_id": 1001, "price_level_id": 3, "price": b"\x21\x34",
             "status": "held", "hold_id": 9, "hold_expires_at": "2099-01-01T00:00:00Z",
             "order_id": None, "version": 4, "updated_at": "2026-11-26T12:00:00Z"}
    envelope = {"before": None, "after": after, "op": "u", "ts_ms": 1, "ts_us": None,
                "ts_ns": None, "transaction": None,
                "source": {"version": "3.6.1.Final", "connector": "postgresql", "name": "cdc",
                           "ts_ms": 1_795_000_000_000, "snapshot": "false", "db": "ticketing",
                           "sequence": None, "ts_us": None, "ts_ns": None,
                           "schema": "ticketing", "table": "seat_inventory", "txId": 5,
                           "lsn": 123, "xmin": None, "origin": None, "origin_lsn": None}}
    decoder = codec.ProjectingDecoder(json.dumps(ENVELOPE), ENVELOPE_FIELDS)
    body, whole = fastavro_round_trip(ENVELOPE, envelope)
    projected = decoder.decode(body)
    assert decode_seat_change(projected) == decode_seat_change(whole)
    assert "updated_at" not in projected["after"] and "db" not in projected["source"]
    # A delete: its before image, of which the key and the version are read.
    body, whole = fastavro_round_trip(ENVELOPE, {**envelope, "op": "d", "before": after,
                                                 "after": None})
    projected = decoder.decode(body)
    assert decode_seat_change(projected) == decode_seat_change(whole)
    assert projected["before"] == {"event_id": 7, "seat_id": 1001, "version": 4}


def test_bytes_that_do_not_match_are_refused(codec: ModuleType) -> None:
    decoder = codec.ProjectingDecoder(json.dumps(EVERY_TYPE))
    body, _ = fastavro_round_trip(EVERY_TYPE, {
        "b": True, "i": 1, "l": 2, "f": 0.5, "d": 0.25, "s": "s", "y": b"y", "n": None,
        "x": b"four", "e": "RED", "a": [None, 1, "a"], "m": {"k": "BLUE"}, "r": None, "r2": None})
    with pytest.raises(ValueError, match="truncated"):
        decoder.decode(body[:-3])
    with pytest.raises(ValueError, match="bytes left after the record"):
        decoder.decode(body + b"\x00")
    with pytest.raises(ValueError, match="boolean byte"):
        decoder.decode(b"\x07" + body[1:])


def test_logical_types_fastavro_turns_into_objects_are_refused_up_front(
        codec: ModuleType) -> None:
    schema = {"type": "record", "name": "T", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
    with pytest.raises(ValueError, match="unsupported"):
        codec.ProjectingDecoder(json.dumps(schema))
    with pytest.raises(ValueError, match="unsupported"):  # projected, so read: refused too
        codec.ProjectingDecoder(json.dumps(schema), {"at": None})


def test_the_wire_decoder_reads_the_header_and_picks_the_reader_of_its_id(
        codec: ModuleType) -> None:
    schema = load_schema("seat-availability-key").text
    body, expected = fastavro_round_trip(json.loads(schema), {"event_id": 3, "seat_id": 70_000})
    wire = codec.WireDecoder()
    with pytest.raises(codec.UnknownSchemaError):
        wire.decode(b"\0\0\0\0\7" + body)  # no reader for id 7 yet
    wire.add(7, codec.ProjectingDecoder(schema))
    bodies: list[bytes] = []
    wire.add(8, lambda b: bodies.append(b) or "read by Python")
    assert wire.decode(b"\0\0\0\0\7" + body) == expected
    assert wire.decode(b"\0\0\0\0\x08" + body) == "read by Python" and bodies == [body]
    for not_wire_format in (b"", b"\0\0\0\7", b"\1\0\0\0\7" + body):
        with pytest.raises(codec.UnknownSchemaError):
            wire.decode(not_wire_format)
    with pytest.raises(ValueError, match="bytes left after the record"):
        wire.decode(b"\0\0\0\0\7" + body + b"\0")


def _zigzag(n: int) -> bytes:
    """Avro's long: zigzag, then base-128 varint."""
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while True:
        byte, z = z & 0x7F, z >> 7
        out.append(byte | (0x80 if z else 0))
        if not z:
            return bytes(out)


EMPTY_ITEMS = {"type": "record", "name": "Nulls", "fields": [
    {"name": "id", "type": "long"},
    {"name": "nulls", "type": {"type": "array", "items": "null"}},
    {"name": "empties", "type": {"type": "array", "items": {
        "type": "record", "name": "Empty", "fields": []}}}]}


@pytest.mark.parametrize("projection", [None, {"id": None}], ids=["read", "skipped"])
@pytest.mark.parametrize("field", ["nulls", "empties"])
def test_a_huge_count_of_zero_byte_items_is_refused_not_looped_over(
        codec: ModuleType, projection: Any, field: str) -> None:
    # A dozen bytes claiming 2^62 items that take no bytes: without a bound the decoder would
    # loop (holding the GIL) for ever; read or skipped, it must end with an error at once.
    huge = _zigzag(1) + (_zigzag(1 << 62) + _zigzag(0) + _zigzag(0) if field == "nulls"
                         else _zigzag(0) + _zigzag(1 << 62) + _zigzag(0))
    decoder = codec.ProjectingDecoder(json.dumps(EMPTY_ITEMS), projection)
    with pytest.raises(ValueError, match="array items of zero bytes"):
        decoder.decode(huge)


def test_many_zero_byte_items_within_the_bound_still_read(codec: ModuleType) -> None:
    record = {"id": 7, "nulls": [None] * 1000, "empties": [{}] * 3}
    body, expected = fastavro_round_trip(EMPTY_ITEMS, record)
    assert codec.ProjectingDecoder(json.dumps(EMPTY_ITEMS)).decode(body) == expected
