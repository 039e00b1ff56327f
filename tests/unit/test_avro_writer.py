"""RecordWriter writes the bytes fastavro writes, for every seatflow schema and any record."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.avro import RecordWriter
from pipelines.schemas import SCHEMAS_DIR

SCHEMAS = {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMAS_DIR.glob("*.avsc"))}

_LONG = st.integers(-(2**63), 2**63 - 1)
_MOMENT = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(UTC))


def values(kind: Any) -> st.SearchStrategy[Any]:
    """Values fastavro accepts for an Avro type, logical types in their Python form."""
    if isinstance(kind, list):
        return st.one_of(*(values(k) for k in kind))
    if isinstance(kind, dict):
        logical = kind.get("logicalType")
        if logical == "decimal":
            scale, precision = kind.get("scale", 0), kind["precision"]
            return st.decimals(min_value=-(10 ** (precision - scale)) + 1,
                               max_value=10 ** (precision - scale) - 1, places=scale,
                               allow_nan=False, allow_infinity=False)
        if logical in ("timestamp-millis", "timestamp-micros"):
            return st.one_of(_MOMENT, st.integers(0, 2**52))
        if kind["type"] == "enum":
            return st.sampled_from(kind["symbols"])
        if kind["type"] == "record":
            return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in kind["fields"]})
        if kind["type"] == "array":
            return st.lists(values(kind["items"]), max_size=3)
        return values(kind["type"])
    return {
        "null": st.none(), "boolean": st.booleans(), "int": st.integers(-(2**31), 2**31 - 1),
        "long": _LONG, "string": st.text(max_size=8), "bytes": st.binary(max_size=8),
        "double": st.floats(allow_nan=False), "float": st.floats(allow_nan=False, width=32),
    }[kind]


def fastavro_bytes(schema: Any, record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_record_writer_writes_what_fastavro_writes(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    record = data.draw(values(schema))
    buf = io.BytesIO()
    RecordWriter(schema).write(buf, record)
    assert buf.getvalue() == fastavro_bytes(schema, record)


def test_the_plan_covers_the_seat_record_unions_and_decimals() -> None:
    """The seat-availability value has the unions and logical types the plan is for."""
    schema = SCHEMAS["seat-availability-value"]
    record = {
        "event_id": 1, "seat_id": 2, "status": "HELD", "section_code": "101", "row_label": "A",
        "seat_number": 7, "price_level_id": 3, "price_level_code": "P3",
        "price": Decimal("85.00"), "hold_expires_at": datetime(2026, 11, 26, 12, tzinfo=UTC),
        "source_version": 4, "source_lsn": 99, "source_committed_at": 1_795_000_000_000,
        "snapshot": False, "published_at": 1_795_000_000_050,
    }
    buf = io.BytesIO()
    RecordWriter(schema).write(buf, record)
    assert buf.getvalue() == fastavro_bytes(schema, record)
    decoded = fastavro.schemaless_reader(io.BytesIO(buf.getvalue()),
                                         fastavro.parse_schema(schema), None)
    assert decoded["price"] == Decimal("85.00") and decoded["hold_expires_at"] == record[
        "hold_expires_at"]
