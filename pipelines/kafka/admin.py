"""Creating seatflow's topics and keeping their configs as the specs say."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from pipelines.errors import SeatflowError
from pipelines.kafka.topics import TopicSpec

__all__ = ["TopicLayoutError", "ensure_topics"]

log = logging.getLogger(__name__)


class TopicLayoutError(SeatflowError, RuntimeError):
    """A topic exists with another partition count than the settings give it."""


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], *, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet, and set the configs of those that do (so a
    changed spec reaches existing topics); return the names created."""
    metadata = admin.list_topics(timeout=timeout).topics
    existing = set(metadata)
    wrong = [f"{s.name} has {len(metadata[s.name].partitions)} partitions, not {s.partitions}"
             for s in specs if s.name in metadata
             and len(metadata[s.name].partitions) != s.partitions]
    if wrong:
        # Adding partitions would move events (and a seat's key) to other partitions, where
        # their order and the compacted state split in two: never done behind anyone's back.
        raise TopicLayoutError(
            "; ".join(wrong) + ". The partition count is fixed when the topics are created: "
            "set SEATFLOW_PARTITIONS to match, or start afresh (`seatflow stack reset`).")
    missing = [s for s in specs if s.name not in existing]
    present = [s for s in specs if s.name in existing and s.config]
    if present:
        resources = [ConfigResource(ResourceType.TOPIC, s.name, incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in s.config.items()]) for s in present]
        for fut in admin.incremental_alter_configs(resources, request_timeout=timeout).values():
            fut.result(timeout)
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
