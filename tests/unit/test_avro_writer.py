"""RecordWriter writes the bytes fastavro writes, for every seatflow schema and any record, with
either codec (the `codec` fixture)."""

from __future__ import annotations

import io
import json
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import avro
from pipelines.avro import RecordWriter
from pipelines.avro.schemas import SCHEMAS_DIR
from tests.unit.avro_values import values

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("codec")]

SCHEMAS = {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMAS_DIR.glob("*.avsc"))}


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
    assert RecordWriter(schema).encode(record) == fastavro_bytes(schema, record)


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
    body = RecordWriter(schema).encode(record)
    assert body == fastavro_bytes(schema, record)
    decoded = fastavro.schemaless_reader(io.BytesIO(body),
                                         fastavro.parse_schema(schema), None)
    assert decoded["price"] == Decimal("85.00") and decoded["hold_expires_at"] == record[
        "hold_expires_at"]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_seatflow_schema_is_written_natively(name: str) -> None:
    """No schema of schemas/ falls back to fastavro wholesale (the speed is the point)."""
    assert RecordWriter(SCHEMAS[name])._encoder is not None


@pytest.mark.parametrize("price", [Decimal("0.00"), Decimal("-0.00"), Decimal("-128.00"),
                                   Decimal("85"), Decimal("99999999.99")])
def test_decimals_are_written_as_fastavro_writes_them(price: Decimal) -> None:
    """Each price after another through one writer (its conversions are cached by value)."""
    schema = SCHEMAS["section-availability-value"]
    writer = RecordWriter(schema)
    for value in (Decimal("0.00"), price):
        record = {"event_id": 1, "section_code": "101", "price_level_id": 2, "open": 1,
                  "held": 0, "sold": 0, "lowest_open_price": value, "as_of": 5,
                  "source_committed_at": 4}
        assert writer.encode(record) == fastavro_bytes(schema, record)


def test_a_value_of_the_wrong_type_gets_fastavro_s_verdict() -> None:
    schema = SCHEMAS["seat-availability-key"]
    with pytest.raises((ValueError, TypeError)):
        RecordWriter(schema).encode({"event_id": "one", "seat_id": 2})
    # A bool is an int to fastavro: written by it, not refused.
    assert (RecordWriter(schema).encode({"event_id": True, "seat_id": 2})
            == fastavro_bytes(schema, {"event_id": True, "seat_id": 2}))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), schema_id=st.integers(0, 2**31 - 1))
def test_a_header_comes_before_every_body(data: st.DataObject, schema_id: int) -> None:
    """Natively and through fastavro (a bool where an int is due goes to fastavro)."""
    schema = SCHEMAS["seat-availability-value"]
    header = b"\0" + schema_id.to_bytes(4, "big")
    record = data.draw(values(schema))
    writer = RecordWriter(schema, header=header)
    assert writer.encode(record) == header + fastavro_bytes(schema, record)
    flagged = {**record, "source_version": True}
    assert writer.encode(flagged) == header + fastavro_bytes(schema, flagged)


def test_a_record_the_codec_does_not_take_is_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """fastavro writes it (the same bytes), never silently: the writer counts such records and
    logs the first with its reason."""
    schema = SCHEMAS["seat-availability-key"]
    writer = RecordWriter(schema)
    assert writer.encode({"event_id": 1, "seat_id": 2}) == fastavro_bytes(
        schema, {"event_id": 1, "seat_id": 2}) and writer.fallbacks == 0
    with caplog.at_level(logging.INFO, logger="pipelines.avro"):
        for seat in (2, 3):  # not a dict: the native encoder reads a record's fields as a dict's
            record = OrderedDict(event_id=1, seat_id=seat)
            assert writer.encode(record) == fastavro_bytes(schema, record)
    assert writer.fallbacks == 2
    assert [r.getMessage() for r in caplog.records if "did not take" in r.getMessage()] == [
        "fastavro wrote a record of SeatAvailabilityKey that the "
        f"{avro.CODEC_NAME} codec did not take (a record of type OrderedDict, not dict); the writer "
        "counts the others in fallbacks"]


def test_a_writer_whose_records_the_codec_keeps_refusing_stops_asking_it(
        caplog: pytest.LogCaptureFixture) -> None:
    """Records fastavro writes alike whatever the writer asks first; past GIVE_UP refusals in a
    row it asks fastavro only (the codec's attempts would be wasted time)."""
    schema = SCHEMAS["seat-availability-key"]
    writer = RecordWriter(schema)
    with caplog.at_level(logging.INFO, logger="pipelines.avro"):
        for seat in range(RecordWriter.GIVE_UP + 3):
            record = OrderedDict(event_id=1, seat_id=seat)
            assert writer.encode(record) == fastavro_bytes(schema, record)
        plain = {"event_id": 1, "seat_id": 2}
        assert writer.encode(plain) == fastavro_bytes(schema, plain)
    assert writer.fallbacks == RecordWriter.GIVE_UP + 4
    assert sum("refused" in r.getMessage() for r in caplog.records) == 1
