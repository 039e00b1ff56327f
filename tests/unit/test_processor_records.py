"""Dead letters, anomaly records, tombstone headers and the worker's restart backoff (pure)."""

from __future__ import annotations

import hashlib
import io
import json
from decimal import Decimal

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.avro.schemas import SCHEMAS_DIR
from pipelines.processor.aggregate import Deleted
from pipelines.processor.core import Anomaly, SeatChange, SeatState
from pipelines.processor.records import (
    DEAD_LETTER_BYTES_LIMIT,
    anomaly_value,
    dead_letter_value,
    deleted_header,
    parse_deleted_header,
)
from pipelines.processor.supervise import restart_delay

pytestmark = pytest.mark.unit

WHERE = ("cdc.ticketing.seat_inventory", 0, 42)


def schema(subject: str) -> object:
    return fastavro.parse_schema(json.loads((SCHEMAS_DIR / f"{subject}.avsc").read_text()))


def encodes(subject: str, record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema(subject), record)
    return buf.getvalue()


def letter(value: bytes | None, **kw: object) -> dict:
    return dead_letter_value(key=b"k", value=value, headers=[("h", b"v")], where=WHERE,
                             timestamp_ms=5, reason="undecodable", error=ValueError("bad bytes"),
                             failed_at_ms=9, **kw)  # type: ignore[arg-type]


def test_a_dead_letter_keeps_small_records_whole() -> None:
    record = letter(b"junk")
    assert (record["original_key"], record["original_value"]) == (b"k", b"junk")
    assert record["original_headers"] == [{"name": "h", "value": b"v"}]
    assert record["original_value_sha256"] == hashlib.sha256(b"junk").hexdigest()
    assert not record["original_truncated"]
    assert record["error_message"] == "ValueError: bad bytes"
    encodes("seatflow.dead-letter-value", record)


def test_a_record_near_the_message_limit_becomes_its_length_hash_and_coordinates() -> None:
    junk = b"\x00" * (1024 * 1024 - 100)
    record = letter(junk)
    assert record["original_value"] is None and record["original_key"] is None
    assert record["original_truncated"]
    assert record["original_value_length"] == len(junk)
    assert record["original_value_sha256"] == hashlib.sha256(junk).hexdigest()
    assert (record["source_topic"], record["source_partition"], record["source_offset"]) == WHERE
    assert len(encodes("seatflow.dead-letter-value", record)) < DEAD_LETTER_BYTES_LIMIT


@given(st.binary(max_size=2 * DEAD_LETTER_BYTES_LIMIT), st.text(max_size=10_000))
def test_every_dead_letter_fits_far_under_the_message_limit(value: bytes, message: str) -> None:
    record = dead_letter_value(key=None, value=value, headers=[], where=WHERE, timestamp_ms=None,
                               reason="undecodable", error=RuntimeError(message), failed_at_ms=0)
    assert len(encodes("seatflow.dead-letter-value", record)) <= DEAD_LETTER_BYTES_LIMIT + 10_000


def test_an_anomaly_record_names_the_seat_the_rule_and_before_and_after() -> None:
    change = SeatChange("u", 7, 1001, "SOLD", 3, Decimal("85.125"), None, 5, 99, 1_000, False)
    before = SeatState(4, "OPEN", "101", 3, Decimal("85.00"), 90)
    record = anomaly_value(Anomaly("illegal_transition", "OPEN -> SOLD"), change, before,
                           where=WHERE, detected_at_ms=2_000)
    assert (record["before_status"], record["before_version"]) == ("OPEN", 4)
    assert (record["after_status"], record["after_version"]) == ("SOLD", 5)
    assert record["after_price_exact"] == "85.125"
    assert record["rule"] == "illegal_transition" and record["source_offset"] == 42
    encodes("seatflow.anomalies-value", record)


@pytest.mark.parametrize("gone", [Deleted(7, 123), Deleted(1, None)])
def test_a_tombstone_header_round_trips(gone: Deleted) -> None:
    assert parse_deleted_header(deleted_header(gone)) == gone  # type: ignore[arg-type]


def test_a_tombstone_without_or_with_a_bad_header_is_not_a_remembered_delete() -> None:
    assert parse_deleted_header(None) is None
    assert parse_deleted_header([("other", b"1:2")]) is None
    assert parse_deleted_header([("seatflow.deleted", b"x:y")]) is None


def test_the_worker_restarts_at_once_then_backs_off_to_a_bound() -> None:
    delays = [restart_delay(n) for n in range(1, 20)]
    assert delays[0] == 0
    assert delays == sorted(delays) and max(delays) == 30
