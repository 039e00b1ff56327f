"""Reading topics: whole (from their start, or given offsets, to their end now) or as they go."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipelines.kafka import clients
from pipelines.settings import Settings

__all__ = ["next_records", "read_to_end", "read_topic", "reader_group_prefix", "topic_reader"]


def reader_group_prefix(purpose: str) -> str:
    """The names of a topic reader's groups: one of its own per reader, never joined, but its
    consumer still looks up the group's coordinator, which a broker with ACLs allows only to a
    principal that may describe the group (pipelines/kafka/acls.py grants these prefixes)."""
    return f"seatflow-{purpose}-"


def next_records(consumer: Consumer, max_records: int, timeout: float) -> list[Message]:
    """Up to max_records: waits up to `timeout` for the first, then takes only what has already
    arrived. (consume(n, timeout) holds arrived records back until n arrive or time is up.)"""
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_records <= 1:
        return [first]
    return [first, *consumer.consume(max_records - 1, timeout=0)]


def read_to_end(consumer: Consumer, topic: str, handle: Callable[[Message], None], *,
                start: Mapping[int, int] | None = None) -> int:
    """Feed every committed record of topic to handle, from its start (or the offsets in
    `start`, partition -> offset; the start where it names none) to its current end."""
    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return 0
    start = start or {}
    consumer.assign([TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING))
                     for p in meta.partitions])
    remaining = {p for p in meta.partitions
                 if consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                 > start.get(p, 0)}
    count = 0
    while remaining:
        for msg in next_records(consumer, 10_000, timeout=1.0):
            err = msg.error()
            if err is None:
                handle(msg)
                count += 1
            elif err.code() == KafkaError._PARTITION_EOF:
                remaining.discard(msg.partition() or 0)
            else:
                raise KafkaException(err)
    consumer.unassign()
    return count


def topic_reader(settings: Settings, purpose: str, **overrides: Any) -> Consumer:
    """A read_committed consumer that reports each partition's end, in a consumer group of its
    own (named after `purpose`) that commits nothing; for reading topics whole."""
    return clients.consumer(settings, group_id=f"{reader_group_prefix(purpose)}{uuid.uuid4()}", **{
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        # Reading as fast as it can: a full queue pauses fetching for 10 ms, not a second.
        "fetch.queue.backoff.ms": 10,
        **overrides,
    })


def read_topic(settings: Settings, topic: str, handle: Callable[[Message], None], *,
               purpose: str, start: Mapping[int, int] | None = None) -> int:
    """Feed every committed record of topic, start (or `start`, as read_to_end) to current end,
    to handle; the count read.

    A consumer group of its own (named after `purpose`) that commits nothing.
    """
    consumer = topic_reader(settings, purpose)
    try:
        return read_to_end(consumer, topic, handle, start=start)
    finally:
        consumer.close()
