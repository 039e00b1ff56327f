"""Health of the availability pipeline: freshness, dead letters, and reconciliation with the DB."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pipelines.kafka.groups import end_offsets, group_lag
from pipelines.kafka.topics import ANOMALIES, DEAD_LETTER, EVENT_AVAILABILITY, SEAT_AVAILABILITY, cdc_topic
from pipelines.processor.config import GROUP_ID
from pipelines.reconcile import latest_values
from pipelines.settings import Settings

__all__ = ["Freshness", "anomaly_counts", "dead_letter_counts", "freshness", "topic_latest"]


@dataclass(frozen=True)
class Freshness:
    lag: int  # seat-inventory changes not yet committed by the processor
    newest_change_ms: int | None  # newest seat_inventory.updated_at in the database
    newest_published_ms: int | None  # newest commit time the event-availability topic reflects

    @property
    def staleness_ms(self) -> int | None:
        """How far the published availability trails the database's newest change."""
        if self.newest_change_ms is None:
            return 0
        if self.newest_published_ms is None:
            return None
        return max(self.newest_change_ms - self.newest_published_ms, 0)


def topic_latest(settings: Settings, topic: str) -> dict[tuple, dict]:
    """The newest value of every key of a compacted topic (read committed), keyed by its fields."""
    latest = latest_values(settings, topic, lambda _: True)
    return {key: value for key, value in latest.items() if value is not None}


def freshness(settings: Settings) -> Freshness:
    lag = group_lag(settings, GROUP_ID, cdc_topic(settings, "seat_inventory"))
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT (extract(epoch FROM max(updated_at)) * 1000)::bigint"
            " FROM ticketing.seat_inventory"
        ).fetchone()
    published = [int(v["source_committed_at"].timestamp() * 1000)
                 for v in topic_latest(settings, EVENT_AVAILABILITY).values()]
    return Freshness(lag, row[0] if row else None, max(published, default=None))


def anomaly_counts(settings: Settings) -> tuple[int, int]:
    """(anomalies, seat records published), from the topics' end offsets (upper bounds, as in
    dead_letter_counts)."""
    anomalies = sum(end_offsets(settings, ANOMALIES).values())
    published = sum(end_offsets(settings, SEAT_AVAILABILITY).values())
    return anomalies, published


def dead_letter_counts(settings: Settings) -> tuple[int, int]:
    """(dead letters, seat records published), from the topics' end offsets (an upper bound:
    transaction markers take offsets too)."""
    dead = sum(end_offsets(settings, DEAD_LETTER).values())
    published = sum(end_offsets(settings, SEAT_AVAILABILITY).values())
    return dead, published


@dataclass(frozen=True)
class SlotRetention:
    """What a replication slot holds back (pg_replication_slots)."""

    slot: str
    active: bool
    # WAL kept for the slot: from its restart_lsn to the current end of the WAL; None when
    # the slot has none left (lost).
    retained_bytes: int | None
    # reserved / extended: within max_wal_size / max_slot_wal_keep_size; unreserved: past
    # them, to be removed at the next checkpoint; lost: removed, the slot cannot be used.
    wal_status: str | None
    # Bytes that can still be written before the slot is lost (None: no limit is set).
    safe_wal_size: int | None


def slot_retention(settings: Settings, slots: list[str]) -> dict[str, SlotRetention | None]:
    """The named slots' retained WAL; None for a slot that does not exist."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,"
            " wal_status, safe_wal_size FROM pg_replication_slots WHERE slot_name = ANY(%s)",
            (slots,)).fetchall()
    found = {r[0]: SlotRetention(r[0], bool(r[1]), r[2], r[3], r[4]) for r in rows}
    return {slot: found.get(slot) for slot in slots}


def slot_verdict(slot: str, retention: SlotRetention | None,
                 warn_bytes: int) -> tuple[str, str]:
    """("ok" | "warn" | "error", why) for one slot (pure).

    error: the slot is gone or lost (changes were removed before Debezium read them: the
    availability must be re-snapshotted). warn: it holds more WAL than `warn_bytes`, or is
    past its reservation (its WAL goes at the next checkpoint).
    """
    if retention is None:
        return "error", f"replication slot {slot} does not exist"
    if retention.wal_status == "lost" or (retention.retained_bytes is None
                                          and retention.wal_status is not None):
        return "error", (f"replication slot {slot} is lost: PostgreSQL removed WAL it still "
                         "needed (max_slot_wal_keep_size); re-snapshot, see the README")
    if retention.wal_status == "unreserved":
        return "warn", (f"replication slot {slot} is past max_slot_wal_keep_size: it is lost "
                        "at the next checkpoint unless the connector catches up")
    held = retention.retained_bytes or 0
    if held > warn_bytes:
        state = "active" if retention.active else "inactive (is the connector running?)"
        return "warn", (f"replication slot {slot} holds {held / 2**20:,.0f} MiB of WAL "
                        f"(warning above {warn_bytes / 2**20:,.0f} MiB); it is {state}")
    return "ok", f"replication slot {slot} holds {held / 2**20:,.1f} MiB of WAL"
