"""The processor's side records, built purely: dead letters, anomalies, tombstone headers."""

from __future__ import annotations

import hashlib
import traceback
from typing import Any

from pipelines.processor.aggregate import Deleted
from pipelines.processor.core import Anomaly, SeatChange, SeatState

__all__ = [
    "DEAD_LETTER_BYTES_LIMIT", "DELETED_HEADER", "Coordinates", "anomaly_value",
    "dead_letter_value", "deleted_header", "parse_deleted_header",
]

# A dead letter carries its record's bytes up to this size; past it, their length and hash.
# Kafka's default message limit is 1 MB: a record just under it, wrapped with its headers and
# an error message, would not fit, and producing the dead letter must never fail.
DEAD_LETTER_BYTES_LIMIT = 256 * 1024
_MESSAGE_LIMIT = 2000
# On a seat's tombstone: the deleted row's last version and the delete's LSN, so a processor
# that starts later still knows the seat was deleted (and ignores older changes of it).
DELETED_HEADER = "seatflow.deleted"

Coordinates = tuple[str, int, int]  # topic, partition, offset


def dead_letter_value(*, key: bytes | None, value: bytes | None,
                      headers: list[tuple[str, Any]], where: Coordinates,
                      timestamp_ms: int | None, reason: str, error: BaseException,
                      failed_at_ms: int, limit: int = DEAD_LETTER_BYTES_LIMIT) -> dict[str, Any]:
    """A dead letter: the record's bytes (or, past `limit`, their length and SHA-256), where it
    was read, and why it failed."""
    size = len(key or b"") + len(value or b"") + sum(
        len(n) + len(v) for n, v in headers if isinstance(v, bytes))
    keep = size <= limit
    message = "".join(traceback.format_exception_only(error)).strip()
    return {
        "original_key": key if keep else None,
        "original_value": value if keep else None,
        "original_headers": [{"name": n, "value": v if keep and isinstance(v, bytes) else None}
                             for n, v in headers],
        "source_topic": where[0],
        "source_partition": where[1],
        "source_offset": where[2],
        "source_timestamp": timestamp_ms if timestamp_ms and timestamp_ms > 0 else None,
        "reason": reason,
        "error_class": type(error).__name__,
        "error_message": message[:_MESSAGE_LIMIT],
        "failed_at": failed_at_ms,
        "original_value_length": None if value is None else len(value),
        "original_value_sha256": None if value is None else hashlib.sha256(value).hexdigest(),
        "original_truncated": not keep,
    }


def anomaly_value(anomaly: Anomaly, change: SeatChange, previous: SeatState | None, *,
                  where: Coordinates, detected_at_ms: int) -> dict[str, Any]:
    """An anomaly record: the seat, the rule, the seat before and the change as committed."""
    return {
        "event_id": change.event_id,
        "seat_id": change.seat_id,
        "rule": anomaly.rule,
        "message": anomaly.message,
        "before_status": previous.status if previous is not None else None,
        "before_version": previous.version if previous is not None else None,
        "after_status": change.status,
        "after_version": change.version,
        "after_price_exact": None if change.price is None else str(change.price),
        "after_hold_expires_at": change.hold_expires_at,
        "source_topic": where[0],
        "source_partition": where[1],
        "source_offset": where[2],
        "source_lsn": change.lsn,
        "source_committed_at": change.committed_at_ms,
        "detected_at": detected_at_ms,
    }


def deleted_header(gone: Deleted) -> list[tuple[str, bytes]]:
    return [(DELETED_HEADER, f"{gone.version}:{'' if gone.lsn is None else gone.lsn}".encode())]


def parse_deleted_header(headers: list[tuple[str, Any]] | None) -> Deleted | None:
    """The Deleted a tombstone's header names; None when it has none (or an unreadable one)."""
    for name, raw in headers or ():
        if name == DELETED_HEADER and isinstance(raw, bytes):
            version, _, lsn = raw.decode("ascii", "replace").partition(":")
            try:
                return Deleted(int(version), int(lsn) if lsn else None)
            except ValueError:
                return None
    return None
