"""Pure transforms of the processor: Debezium envelope -> seat change -> availability record.

Nothing here does I/O or reads a clock; callers pass times in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "ChangeError",
    "ReferenceData",
    "SeatChange",
    "SeatRef",
    "availability_key",
    "availability_value",
    "decode_seat_change",
    "parse_timestamp",
]

Op = Literal["c", "u", "d", "r"]
STATUSES = {"open": "OPEN", "held": "HELD", "sold": "SOLD"}
_SNAPSHOT_FLAGS = {"true", "first", "first_in_data_collection", "last", "last_in_data_collection",
                   "incremental"}


class ChangeError(ValueError):
    """A change event that cannot become an availability record; `reason` names what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SeatChange:
    """One committed change of a seat_inventory row."""

    op: Op
    event_id: int
    seat_id: int
    status: str | None  # OPEN / HELD / SOLD; None for a delete
    price_level_id: int | None
    price: Decimal | None
    hold_expires_at: datetime | None
    version: int
    lsn: int | None
    committed_at_ms: int
    snapshot: bool


@dataclass(frozen=True, slots=True)
class SeatRef:
    """Where a seat is in the venue."""

    section_code: str
    row_label: str
    seat_number: int


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Reference data the processor enriches with, keyed by the ticketing host's ids."""

    seats: Mapping[int, SeatRef]
    price_levels: Mapping[int, str]


def parse_timestamp(value: Any, *, field: str) -> datetime | None:
    """Debezium's ZonedTimestamp (ISO-8601 string) or an already decoded datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as e:
            raise ChangeError("bad_timestamp", f"{field}={value!r} is not ISO-8601") from e
    raise ChangeError("bad_timestamp", f"{field} has type {type(value).__name__}")


def _decimal(value: Any, *, field: str, scale: int = 2) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, str | int):
        return Decimal(value)
    if isinstance(value, bytes):  # Connect Decimal without the logical type: big-endian unscaled
        return Decimal(int.from_bytes(value, "big", signed=True)).scaleb(-scale)
    raise ChangeError("bad_decimal", f"{field} has type {type(value).__name__}")


def _int(row: Mapping[str, Any], name: str) -> int:
    value = row.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ChangeError("missing_field", f"seat_inventory.{name} is {value!r}, expected an integer")
    return value


def decode_seat_change(envelope: Mapping[str, Any]) -> SeatChange:
    """Turn a decoded Debezium envelope of ticketing.seat_inventory into a SeatChange."""
    op = envelope.get("op")
    if op not in ("c", "u", "d", "r"):
        raise ChangeError("bad_op", f"op={op!r} is not one of c, u, d, r")
    source = envelope.get("source") or {}
    row = envelope.get("before") if op == "d" else envelope.get("after")
    if not isinstance(row, Mapping):
        image = "before" if op == "d" else "after"
        raise ChangeError("missing_image", f"op={op} without a {image} image")
    committed_at_ms = source.get("ts_ms")
    if not isinstance(committed_at_ms, int):
        raise ChangeError("missing_field", "source.ts_ms (commit time) is missing")
    status: str | None = None
    if op != "d":
        raw_status = row.get("status")
        status = STATUSES.get(raw_status) if isinstance(raw_status, str) else None
        if status is None:
            raise ChangeError("bad_status", f"status={raw_status!r} is not open, held or sold")
    price_level_id = row.get("price_level_id")
    lsn = source.get("lsn")
    return SeatChange(
        op=op,
        event_id=_int(row, "event_id"),
        seat_id=_int(row, "seat_id"),
        status=status,
        price_level_id=price_level_id if isinstance(price_level_id, int) else None,
        price=_decimal(row.get("price"), field="price"),
        hold_expires_at=parse_timestamp(row.get("hold_expires_at"), field="hold_expires_at"),
        version=_int(row, "version"),
        lsn=lsn if isinstance(lsn, int) else None,
        committed_at_ms=committed_at_ms,
        snapshot=str(source.get("snapshot", "false")).lower() in _SNAPSHOT_FLAGS,
    )


def availability_key(change: SeatChange) -> dict[str, int]:
    return {"event_id": change.event_id, "seat_id": change.seat_id}


def availability_value(
    change: SeatChange, reference: ReferenceData, *, published_at_ms: int
) -> dict[str, Any] | None:
    """The seat-availability record for a change; None (a tombstone) when the row was deleted."""
    if change.op == "d":
        return None
    seat = reference.seats.get(change.seat_id)
    level = reference.price_levels.get(change.price_level_id) if change.price_level_id else None
    return {
        "event_id": change.event_id,
        "seat_id": change.seat_id,
        "status": change.status,
        "section_code": seat.section_code if seat else None,
        "row_label": seat.row_label if seat else None,
        "seat_number": seat.seat_number if seat else None,
        "price_level_id": change.price_level_id,
        "price_level_code": level,
        "price": change.price,
        "hold_expires_at": change.hold_expires_at if change.status == "HELD" else None,
        "source_version": change.version,
        "source_lsn": change.lsn,
        "source_committed_at": change.committed_at_ms,
        "snapshot": change.snapshot,
        "published_at": published_at_ms,
    }
