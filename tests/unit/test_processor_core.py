from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipelines.processor.core import (
    ChangeError,
    ReferenceData,
    SeatRef,
    availability_key,
    availability_value,
    decode_seat_change,
)

pytestmark = pytest.mark.unit

ROW = {
    "event_id": 7,
    "seat_id": 1001,
    "price_level_id": 3,
    "price": Decimal("85.00"),
    "status": "held",
    "hold_id": 55,
    "hold_expires_at": "2026-11-26T12:00:00.250000Z",
    "order_id": None,
    "version": 4,
}
SOURCE = {"ts_ms": 1_764_158_400_000, "lsn": 123456, "snapshot": "false"}
REFERENCE = ReferenceData(seats={1001: SeatRef("101", "F", 12)}, price_levels={3: "P2"})


def envelope(op: str, *, before: dict | None = None, after: dict | None = None, **source) -> dict:
    return {"op": op, "before": before, "after": after, "source": {**SOURCE, **source}}


def test_update_becomes_an_enriched_held_seat() -> None:
    change = decode_seat_change(envelope("u", before={**ROW, "status": "open"}, after=ROW))
    value = availability_value(change, REFERENCE, published_at_ms=1_764_158_400_050)
    assert availability_key(change) == {"event_id": 7, "seat_id": 1001}
    assert value == {
        "event_id": 7,
        "seat_id": 1001,
        "status": "HELD",
        "section_code": "101",
        "row_label": "F",
        "seat_number": 12,
        "price_level_id": 3,
        "price_level_code": "P2",
        "price": Decimal("85.00"),
        "hold_expires_at": datetime(2026, 11, 26, 12, 0, 0, 250000, tzinfo=UTC),
        "source_version": 4,
        "source_lsn": 123456,
        "source_committed_at": 1_764_158_400_000,
        "snapshot": False,
        "published_at": 1_764_158_400_050,
    }


def test_snapshot_read_is_flagged_and_sold_seat_has_no_hold_expiry() -> None:
    row = {**ROW, "status": "sold", "hold_expires_at": None}
    change = decode_seat_change(envelope("r", after=row, snapshot="last"))
    value = availability_value(change, REFERENCE, published_at_ms=0)
    assert change.snapshot is True
    assert value is not None and value["status"] == "SOLD" and value["hold_expires_at"] is None


def test_delete_reads_the_before_image_and_gives_a_tombstone() -> None:
    change = decode_seat_change(envelope("d", before=ROW))
    assert (change.event_id, change.seat_id, change.status) == (7, 1001, None)
    assert availability_value(change, REFERENCE, published_at_ms=0) is None


def test_unknown_seat_is_published_without_location() -> None:
    change = decode_seat_change(envelope("c", after={**ROW, "seat_id": 9}))
    value = availability_value(change, REFERENCE, published_at_ms=0)
    assert value is not None and value["section_code"] is None and value["seat_number"] is None


@pytest.mark.parametrize("price", [Decimal("12.5"), "12.50", b"\x04\xe2"])
def test_price_encodings_all_decode_to_the_same_decimal(price: object) -> None:
    change = decode_seat_change(envelope("c", after={**ROW, "price": price}))
    assert change.price == Decimal("12.50")


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        (envelope("x", after=ROW), "bad_op"),
        (envelope("u", after=None), "missing_image"),
        (envelope("u", after={**ROW, "status": "reserved"}), "bad_status"),
        (envelope("u", after={**ROW, "seat_id": None}), "missing_field"),
        (envelope("u", after={**ROW, "hold_expires_at": "tomorrow"}), "bad_timestamp"),
        ({"op": "u", "after": ROW, "source": {}}, "missing_field"),
    ],
)
def test_bad_changes_name_the_reason(env: dict, reason: str) -> None:
    with pytest.raises(ChangeError) as info:
        decode_seat_change(env)
    assert info.value.reason == reason
