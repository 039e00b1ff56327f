"""Health of the availability pipeline: freshness, dead letters, and reconciliation with the DB."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pipelines.processor.runner import GROUP_ID
from pipelines.reconcile import latest_values
from pipelines.settings import Settings
from pipelines.topics import (
    ANOMALIES,
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    cdc_topic,
    end_offsets,
    group_lag,
)

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
    lag = group_lag(settings.kafka_bootstrap, GROUP_ID, cdc_topic(settings, "seat_inventory"))
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
    anomalies = sum(end_offsets(settings.kafka_bootstrap, ANOMALIES).values())
    published = sum(end_offsets(settings.kafka_bootstrap, SEAT_AVAILABILITY).values())
    return anomalies, published


def dead_letter_counts(settings: Settings) -> tuple[int, int]:
    """(dead letters, seat records published), from the topics' end offsets (an upper bound:
    transaction markers take offsets too)."""
    dead = sum(end_offsets(settings.kafka_bootstrap, DEAD_LETTER).values())
    published = sum(end_offsets(settings.kafka_bootstrap, SEAT_AVAILABILITY).values())
    return dead, published
