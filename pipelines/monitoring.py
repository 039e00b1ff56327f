"""Health of the availability pipeline: freshness, dead letters, and reconciliation with the DB."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import psycopg

from pipelines.processor.runner import GROUP_ID
from pipelines.reconcile import latest_values
from pipelines.settings import Settings
from pipelines.topics import (
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    SECTION_AVAILABILITY,
    cdc_topic,
    end_offsets,
    group_lag,
)

__all__ = [
    "Freshness",
    "SectionCounts",
    "db_section_counts",
    "dead_letter_counts",
    "freshness",
    "section_differences",
    "topic_latest",
    "topic_section_counts",
]

# (event_id, section_code, price_level_id) -> Counter of OPEN / HELD / SOLD
SectionCounts = dict[tuple[int, str, int], Counter[str]]


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


def dead_letter_counts(settings: Settings) -> tuple[int, int]:
    """(dead letters, seat records published), from the topics' end offsets (an upper bound:
    transaction markers take offsets too)."""
    dead = sum(end_offsets(settings.kafka_bootstrap, DEAD_LETTER).values())
    published = sum(end_offsets(settings.kafka_bootstrap, SEAT_AVAILABILITY).values())
    return dead, published


def db_section_counts(settings: Settings, event_id: int | None = None) -> SectionCounts:
    """Seats per section, price level and status, as the ticketing host has them."""
    counts: SectionCounts = {}
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT i.event_id, sec.code, i.price_level_id, upper(i.status), count(*)"
            " FROM ticketing.seat_inventory i JOIN ticketing.seats s USING (seat_id)"
            " JOIN ticketing.sections sec USING (section_id)"
            " WHERE %(event)s::bigint IS NULL OR i.event_id = %(event)s"
            " GROUP BY 1, 2, 3, 4",
            {"event": event_id},
        ).fetchall()
    for event, section, level, status, n in rows:
        counts.setdefault((event, section, level), Counter())[status] = n
    return counts


def topic_section_counts(settings: Settings, event_id: int | None = None) -> SectionCounts:
    """Seats per section, price level and status, as section-availability publishes them."""
    return {
        key: Counter({"OPEN": v["open"], "HELD": v["held"], "SOLD": v["sold"]})
        for key, v in topic_latest(settings, SECTION_AVAILABILITY).items()
        if event_id is None or key[0] == event_id
    }


def section_differences(db: SectionCounts, published: SectionCounts) -> list[str]:
    """One line per section and price level whose counts differ (pure)."""
    out = []
    for key in sorted(db.keys() | published.keys()):
        want, got = +db.get(key, Counter()), +published.get(key, Counter())
        if want != got:
            event, section, level = key
            out.append(f"event {event} section {section} level {level}: database "
                       f"{dict(sorted(want.items()))}, published {dict(sorted(got.items()))}")
    return out
