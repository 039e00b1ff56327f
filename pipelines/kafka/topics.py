"""The names of seatflow's topics and the layout (partitions, configs) of those it writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.settings import Settings

__all__ = [
    "ANOMALIES",
    "DEAD_LETTER",
    "EVENT_AVAILABILITY",
    "SEAT_AVAILABILITY",
    "SECTION_AVAILABILITY",
    "TopicSpec",
    "cdc_topic",
    "output_topics",
]

SEAT_AVAILABILITY = "seat-availability"
SECTION_AVAILABILITY = "section-availability"
EVENT_AVAILABILITY = "event-availability"
DEAD_LETTER = "seatflow.dead-letter"
ANOMALIES = "seatflow.anomalies"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


def cdc_topic(settings: Settings, table: str) -> str:
    """Debezium's topic for a table of the ticketing schema: <prefix>.<schema>.<table>."""
    return f"{settings.topic_prefix}.ticketing.{table}"


def output_topics(settings: Settings) -> list[TopicSpec]:
    # Small segments, cleaned when a tenth of the log is dirty: the processor reads the seat
    # topic back at every start (a crash's recovery time), and a compacted topic is one
    # record per seat.
    compacted = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000",
                 "min.cleanable.dirty.ratio": "0.1",
                 "segment.bytes": str(16 * 1024 * 1024), "segment.ms": str(2 * 60 * 1000)}
    n = settings.partitions
    month = {"retention.ms": str(30 * 24 * 3600 * 1000)}
    return [
        # Created here, before the connector starts: Connect's own creation would make it with
        # the broker's default of one partition. PartitionRouting routes it by event_id.
        TopicSpec(cdc_topic(settings, "seat_inventory"), partitions=n),
        # Co-partitioned with it: an event's records are in the same partition of each.
        TopicSpec(SEAT_AVAILABILITY, partitions=n, config=compacted),
        TopicSpec(SECTION_AVAILABILITY, partitions=n, config=compacted),
        TopicSpec(EVENT_AVAILABILITY, partitions=n, config=compacted),
        TopicSpec(ANOMALIES, partitions=n, config=month),
        TopicSpec(DEAD_LETTER, partitions=1, config=month),
    ]
