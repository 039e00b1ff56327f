"""Pure transforms of the processor: Debezium envelope -> validated seat change -> availability.

Nothing here does I/O or reads a clock; callers pass times in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal, NamedTuple

from pipelines.processor.reference import Reference

__all__ = [
    "ENVELOPE_FIELDS",
    "LEGAL_TRANSITIONS",
    "PRICE_SCALE",
    "Anomaly",
    "ChangeError",
    "SeatChange",
    "SeatState",
    "anomalies_of",
    "decode_seat_change",
    "enrich",
    "new_tuple",
    "parse_timestamp",
    "state_of_record",
    "too_fine",
]

Op = Literal["c", "u", "d", "r"]
# The published price's decimal places (seat-availability-value.avsc): a price the ticketing host
# stores with more (after an upstream ALTER TABLE) is published rounded, as an anomaly.
PRICE_SCALE = 2
STATUSES = {"open": "OPEN", "held": "HELD", "sold": "SOLD"}
# open -> held (a buyer holds), held -> open (released or expired), held -> sold (bought),
# sold -> open (refunded). A seat is never sold without a hold. Breaking this does not stop a
# change: the database decides, and the change is published with an anomaly beside it.
LEGAL_TRANSITIONS = frozenset({("OPEN", "HELD"), ("HELD", "OPEN"), ("HELD", "SOLD"),
                               ("SOLD", "OPEN")})
_SNAPSHOT_FLAGS = {"true", "first", "first_in_data_collection", "last", "last_in_data_collection",
                   "incremental"}


class ChangeError(ValueError):
    """A change event that cannot be read as a seat change at all (it is dead-lettered);
    `reason` names what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


# The processor makes one SeatChange and one SeatState per change: immutable named tuples, built
# faster than frozen dataclasses (which set each field through object.__setattr__).
# Where one is made per change, it is made by `new_tuple(Class, (fields in order))`: a named
# tuple's constructor is a Python function, and skipping its frame saves much of the cost
# (docs/performance.md).
new_tuple = tuple.__new__


class SeatChange(NamedTuple):
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

    @property
    def key(self) -> tuple[int, int]:
        return (self.event_id, self.seat_id)


class SeatState(NamedTuple):
    """What the processor knows of one seat of one event: its newest version, enriched.

    `lsn` orders the seat's streamed changes where versions cannot: a seat deleted and inserted
    again starts at version 1. None when the state came from a snapshot row or is unknown.
    """

    version: int
    status: str
    section_code: str
    price_level_id: int
    price: Decimal
    lsn: int | None = None


class Anomaly(NamedTuple):
    """A business rule a committed change breaks. The change is published all the same."""

    rule: str  # negative_price, hold_expiry, illegal_transition, missing_field, price_scale, ...
    message: str


def parse_timestamp(value: Any, *, field: str) -> datetime | None:
    """Debezium's ZonedTimestamp (ISO-8601 string) or an already decoded datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)  # Python 3.11+ reads a "Z" suffix too
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
        raise ChangeError("missing_field",
                          f"seat_inventory.{name} is {value!r}, expected an integer")
    return value


_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_SCALE)
_ZERO = Decimal(0)

_KEY_FIELDS = ["event_id", "seat_id", "version"]
# The fields of a Debezium envelope decode_seat_change reads: a projection for AvroDecoder. Of
# the before image, only a delete's key and version.
ENVELOPE_FIELDS: dict[str, Any] = {
    "op": None, "before": dict.fromkeys(_KEY_FIELDS),
    "after": dict.fromkeys([*_KEY_FIELDS, "status", "price_level_id", "price", "hold_expires_at"]),
    "source": dict.fromkeys(["ts_ms", "lsn", "snapshot"]),
}


def decode_seat_change(envelope: Mapping[str, Any]) -> SeatChange:
    """Turn a decoded Debezium envelope of ticketing.seat_inventory into a SeatChange.

    A delete is the seat's key and last version, from the before image: its status, price
    level, price and hold expiry are None.
    """
    op = envelope.get("op")
    if op not in ("c", "u", "d", "r"):
        raise ChangeError("bad_op", f"op={op!r} is not one of c, u, d, r")
    source = envelope.get("source") or {}
    row = envelope.get("before") if op == "d" else envelope.get("after")
    if row.__class__ is not dict and not isinstance(row, Mapping):  # the ABC check is slow
        image = "before" if op == "d" else "after"
        raise ChangeError("missing_image", f"op={op} without a {image} image")
    committed_at_ms = source.get("ts_ms")
    if not isinstance(committed_at_ms, int):
        raise ChangeError("missing_field", "source.ts_ms (commit time) is missing")
    lsn = source.get("lsn")
    lsn = lsn if isinstance(lsn, int) else None
    snapshot = source.get("snapshot", "false")
    snapshot = snapshot != "false" and str(snapshot).lower() in _SNAPSHOT_FLAGS
    event_id, seat_id, version = row.get("event_id"), row.get("seat_id"), row.get("version")
    if type(event_id) is not int or type(seat_id) is not int or type(version) is not int:
        event_id, seat_id, version = (_int(row, n) for n in _KEY_FIELDS)
    if op == "d":
        return new_tuple(SeatChange, (
            op, event_id, seat_id, None, None, None, None, version, lsn, committed_at_ms,
            snapshot))
    raw_status = row.get("status")
    status = STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise ChangeError("bad_status", f"status={raw_status!r} is not open, held or sold")
    price_level_id = row.get("price_level_id")
    price = row.get("price")
    if price is not None and price.__class__ is not Decimal:  # decoded, it is one already
        price = _decimal(price, field="price")
    expires = row.get("hold_expires_at")
    if expires is not None:
        expires = parse_timestamp(expires, field="hold_expires_at")
    return new_tuple(SeatChange, (
        op, event_id, seat_id, status,
        price_level_id if isinstance(price_level_id, int) else None,
        price, expires, version, lsn, committed_at_ms, snapshot,
    ))


def state_of_record(value: Mapping[str, Any]) -> SeatState:
    """A seat's state as its published seat-availability record gives it back (at start)."""
    price = value.get("price")
    return new_tuple(SeatState, (
        value["source_version"], value["status"], value.get("section_code") or "?",
        value.get("price_level_id") or 0, price if price is not None else _ZERO,
        None if value.get("snapshot") else value.get("source_lsn")))


def _finer(price: Decimal) -> bool:
    exponent = price.as_tuple().exponent
    return isinstance(exponent, int) and exponent < -PRICE_SCALE


def too_fine(price: Decimal) -> bool:
    """Whether a price has more decimals than the published price can carry (85.000, from a
    column of scale 3, has not: only its zeros are dropped)."""
    return _finer(price) and price != price.quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def anomalies_of(change: SeatChange, previous: SeatState | None) -> list[Anomaly]:
    """The business rules a (non-duplicate, non-delete) change breaks; empty when none."""
    found: list[Anomaly] = []
    seat, price = change.seat_id, change.price
    if price is not None and price < 0:
        found.append(Anomaly("negative_price", f"price {price} of seat {seat} is below zero"))
    if change.price_level_id is None or price is None:
        found.append(Anomaly("missing_field", f"seat {seat} has no price level or price"))
    elif too_fine(price):
        found.append(Anomaly("price_scale", f"price {price} of seat {seat} has more than "
                             f"{PRICE_SCALE} decimals; published rounded to {PRICE_SCALE}"))
    if change.snapshot:
        # A snapshot row restates the row as it is (a backfill, maybe after lost versions):
        # not a transition, and its time is when it was read, not when the hold was written.
        return found
    if change.status == "HELD":
        expires = change.hold_expires_at
        if expires is None or expires.timestamp() * 1000 <= change.committed_at_ms:
            found.append(Anomaly("hold_expiry", f"hold of seat {seat} expires at {expires}, "
                                 "not after its commit time"))
    if (previous is not None and previous.status != change.status
            and (previous.status, change.status) not in LEGAL_TRANSITIONS):
        found.append(Anomaly("illegal_transition", (
            f"seat {seat} of event {change.event_id} went {previous.status} -> {change.status} "
            f"(version {previous.version} -> {change.version})")))
    return found


def enrich(change: SeatChange, reference: Reference, *,
           published_at_ms: int) -> tuple[SeatState, dict[str, Any]]:
    """The seat's new state and its seat-availability record, for a change that is not a delete.

    What the reference data does not know (a reference that never arrived) is published as
    null, and counted under section "?".
    """
    assert change.status is not None
    seat = reference.seats.get(change.seat_id)
    section = reference.sections.get(seat.section_id) if seat is not None else None
    section_code = section.code if section is not None else None
    level_id = change.price_level_id
    level = reference.price_levels.get(level_id) if level_id is not None else None
    price = change.price
    if price is not None and _finer(price):  # 85.000 is published as 85.00, 85.125 rounded
        price = price.quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)
    status = change.status
    state = new_tuple(SeatState, (
        change.version, status, section_code or "?", level_id or 0,
        price if price is not None else _ZERO, None if change.snapshot else change.lsn))
    return state, {
        "event_id": change.event_id,
        "seat_id": change.seat_id,
        "status": status,
        "section_code": section_code,
        "row_label": seat.row_label if seat is not None else None,
        "seat_number": seat.seat_number if seat is not None else None,
        "price_level_id": level_id,
        "price_level_code": level.code if level is not None else None,
        "price": price,
        "hold_expires_at": change.hold_expires_at if status == "HELD" else None,
        "source_version": change.version,
        "source_lsn": change.lsn,
        "source_committed_at": change.committed_at_ms,
        "snapshot": change.snapshot,
        "published_at": published_at_ms,
    }
