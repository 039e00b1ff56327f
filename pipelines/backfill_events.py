"""What a backfill writes and recognises, as Debezium would: the incremental-snapshot signal,
seat_inventory rows as `after` images, snapshot (`r`) change events. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["SEAT_INVENTORY", "covered_seat", "lsn_int", "row_image", "snapshot_envelope",
           "snapshot_signal"]

SEAT_INVENTORY = "ticketing.seat_inventory"


def snapshot_signal(event_id: int) -> dict[str, Any]:
    """The `execute-snapshot` signal's data: an incremental snapshot of one event's seats."""
    return {
        "data-collections": [SEAT_INVENTORY],
        "type": "incremental",
        "additional-conditions": [
            {"data-collection": SEAT_INVENTORY, "filter": f"event_id = {int(event_id)}"}],
    }


def covered_seat(envelope: Mapping[str, Any], event_id: int) -> tuple[int, bool] | None:
    """(seat_id, is a snapshot row) when a seat_inventory change event is about the event."""
    op = envelope.get("op")
    row = envelope.get("before") if op == "d" else envelope.get("after")
    if not isinstance(row, Mapping) or row.get("event_id") != event_id:
        return None
    source = envelope.get("source") or {}
    return int(row["seat_id"]), op == "r" and source.get("snapshot") == "incremental"


def _zoned(value: datetime) -> str:
    """Debezium's ZonedTimestamp: ISO-8601 in UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def row_image(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    """A seat_inventory row as Debezium's `after` image (timestamps as ZonedTimestamp strings)."""
    return {n: _zoned(v) if isinstance(v, datetime) else v for n, v in zip(names, values, strict=True)}


def lsn_int(text: str) -> int:
    """PostgreSQL's text form of an LSN ('16/B374D848') as the number Debezium sends."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def snapshot_envelope(after: dict[str, Any], *, server: str, committed_at_ms: int,
                      lsn: int | None = None) -> dict[str, Any]:
    """A Debezium-like snapshot (`r`) change event of one row, marked as written by seatflow.

    `lsn` is where the rows were read: a seat deleted before it and inserted again is restated
    (the processor orders a deleted seat's changes by LSN)."""
    source = {
        "version": "seatflow-backfill", "connector": "postgresql", "name": server,
        "ts_ms": committed_at_ms, "snapshot": "incremental", "db": "ticketing",
        "sequence": None, "ts_us": None, "ts_ns": None, "schema": "ticketing",
        "table": "seat_inventory", "txId": None, "lsn": lsn, "xmin": None,
        "origin": None, "origin_lsn": None,
    }
    return {"before": None, "after": after, "source": source, "transaction": None, "op": "r",
            "ts_ms": committed_at_ms, "ts_us": None, "ts_ns": None}
