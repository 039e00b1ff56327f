"""Topic names and the creation of the topics seatflow writes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.settings import Settings

__all__ = ["TopicSpec", "cdc_topic", "ensure_topics", "output_topics"]

log = logging.getLogger(__name__)

SEAT_AVAILABILITY = "seat-availability"
DEAD_LETTER = "seatflow.dead-letter"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


def cdc_topic(settings: Settings, table: str) -> str:
    """Debezium's topic for a table of the ticketing schema: <prefix>.<schema>.<table>."""
    return f"{settings.topic_prefix}.ticketing.{table}"


def output_topics() -> list[TopicSpec]:
    compacted = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    return [
        TopicSpec(SEAT_AVAILABILITY, partitions=3, config=compacted),
        TopicSpec(DEAD_LETTER, partitions=1, config={"retention.ms": str(30 * 24 * 3600 * 1000)}),
    ]


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], *, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config)
         for s in missing],
        request_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as e:
            if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    log.info("created topics %s", created)
    return created
