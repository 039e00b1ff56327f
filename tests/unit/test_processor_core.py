from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipelines.processor.core import (
    ChangeError,
    SeatState,
    anomalies_of,
    decode_seat_change,
    enrich,
)
from pipelines.processor.reference import EventRef, PriceLevelRef, Reference, SeatRef, SectionRef

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
COMMITTED = int(datetime(2026, 11, 26, 11, 59, tzinfo=UTC).timestamp() * 1000)
SOURCE = {"ts_ms": COMMITTED, "lsn": 123456, "snapshot": "false"}


def reference() -> Reference:
    return Reference(
        events={7: EventRef("Comets v Rovers", "on_sale")},
        sections={40: SectionRef("101")},
        seats={1001: SeatRef(40, "F", 12)},
        price_levels={3: PriceLevelRef(7, "P2", Decimal("85.00"))},
    )


def envelope(op: str, *, before: dict | None = None, after: dict | None = None, **source) -> dict:
    return {"op": op, "before": before, "after": after, "source": {**SOURCE, **source}}


def test_update_becomes_an_enriched_held_seat() -> None:
    change = decode_seat_change(envelope("u", before={**ROW, "status": "open"}, after=ROW))
    state, value = enrich(change, reference(), published_at_ms=COMMITTED + 50)
    assert change.key == (7, 1001)
    assert state == SeatState(4, "HELD", "101", 3, Decimal("85.00"), 123456)
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
        "source_committed_at": COMMITTED,
        "snapshot": False,
        "published_at": COMMITTED + 50,
    }


def test_snapshot_read_is_flagged_and_sold_seat_has_no_hold_expiry() -> None:
    row = {**ROW, "status": "sold", "hold_expires_at": None}
    change = decode_seat_change(envelope("r", after=row, snapshot="last"))
    _, value = enrich(change, reference(), published_at_ms=0)
    assert change.snapshot is True
    assert value["status"] == "SOLD" and value["hold_expires_at"] is None


def test_delete_reads_the_before_image() -> None:
    change = decode_seat_change(envelope("d", before=ROW))
    assert (change.event_id, change.seat_id, change.status) == (7, 1001, None)


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


def state(status: str, version: int = 3) -> SeatState:
    return SeatState(version, status, "101", 3, Decimal("85.00"))


@pytest.mark.parametrize(
    ("previous", "row", "reason"),
    [
        (None, {**ROW, "price": Decimal("-1.00")}, "negative_price"),
        (None, {**ROW, "hold_expires_at": "2026-11-26T11:58:00Z"}, "hold_expiry"),
        (None, {**ROW, "hold_expires_at": None}, "hold_expiry"),
        (state("OPEN"), {**ROW, "status": "sold", "hold_expires_at": None}, "illegal_transition"),
        (state("SOLD"), ROW, "illegal_transition"),
        (None, {**ROW, "price_level_id": None}, "missing_field"),
        (None, {**ROW, "price": Decimal("85.125")}, "price_scale"),
    ],
)
def test_broken_rules_are_named_as_anomalies(previous: SeatState | None, row: dict,
                                             reason: str) -> None:
    found = anomalies_of(decode_seat_change(envelope("u", after=row)), previous)
    assert reason in [a.rule for a in found]


@pytest.mark.parametrize(
    ("previous", "status"), [("OPEN", "held"), ("HELD", "open"), ("HELD", "sold"), ("SOLD", "open"),
                             ("OPEN", "open"), (None, "sold")]
)
def test_legal_transitions_pass(previous: str | None, status: str) -> None:
    row = {**ROW, "status": status, "hold_expires_at": ROW["hold_expires_at"] if status == "held"
           else None}
    change = decode_seat_change(envelope("u", after=row))
    assert anomalies_of(change, state(previous) if previous else None) == []


@pytest.mark.parametrize(
    ("previous", "row"),
    [
        (state("SOLD"), ROW),  # held again after lost versions: a restatement, not a transition
        (state("OPEN"), {**ROW, "status": "sold", "hold_expires_at": None}),
        (None, {**ROW, "hold_expires_at": "2026-11-26T11:58:00Z"}),  # expired, not yet swept
    ],
)
def test_snapshot_rows_restate_the_row_and_are_not_judged_as_transitions(
        previous: SeatState | None, row: dict) -> None:
    change = decode_seat_change(envelope("r", after=row, snapshot="incremental"))
    assert change.snapshot
    assert anomalies_of(change, previous) == []
    bad = decode_seat_change(envelope("r", after={**row, "price": Decimal("-1.00")},
                                      snapshot="incremental"))
    assert [a.rule for a in anomalies_of(bad, previous)] == ["negative_price"]
