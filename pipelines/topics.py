"""Topic names and the creation of the topics seatflow writes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from pipelines.errors import SeatflowError
from pipelines.settings import Settings

__all__ = [
    "GroupShare",
    "TopicLayoutError",
    "TopicSpec",
    "cdc_topic",
    "committed_ends",
    "end_offsets",
    "ensure_topics",
    "group_committed",
    "group_lag",
    "group_members",
    "group_offsets",
    "group_shares",
    "next_records",
    "output_topics",
    "read_to_end",
    "read_topic",
    "topic_reader",
    "unstable_offsets",
]

log = logging.getLogger(__name__)

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


class TopicLayoutError(SeatflowError, RuntimeError):
    """A topic exists with another partition count than the settings give it."""


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


def end_offsets(bootstrap: str, topic: str, *, timeout: float = 10.0) -> dict[int, int]:
    """High watermark of every partition of topic (empty when the topic does not exist)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "seatflow-offsets-probe"})
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in meta.partitions}
    finally:
        consumer.close()


def group_committed(bootstrap: str, group_id: str, topic: str, *,
                    timeout: float = 10.0) -> dict[int, int]:
    """The group's committed offset of every partition of topic (0 where it committed none)."""
    return _committed(bootstrap, group_id, topic, end_offsets(bootstrap, topic, timeout=timeout),
                      timeout=timeout)


def group_lag(bootstrap: str, group_id: str, topic: str, *, timeout: float = 10.0) -> int:
    """Records of topic the group has not committed yet (its whole length if it committed none)."""
    ends = end_offsets(bootstrap, topic, timeout=timeout)
    committed = _committed(bootstrap, group_id, topic, ends, timeout=timeout)
    return sum(end - committed.get(p, 0) for p, end in ends.items())


def _committed(bootstrap: str, group_id: str, topic: str, partitions: Iterable[int], *,
               timeout: float) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    listed = group_offsets(admin, group_id, [TopicPartition(topic, p) for p in partitions],
                           timeout=timeout)
    return {tp.partition: max(tp.offset, 0) for tp in listed}


def next_records(consumer: Consumer, max_records: int, timeout: float) -> list[Message]:
    """Up to max_records: waits up to `timeout` for the first, then takes only what has already
    arrived. (consume(n, timeout) holds arrived records back until n arrive or time is up.)"""
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_records <= 1:
        return [first]
    return [first, *consumer.consume(max_records - 1, timeout=0)]


def committed_ends(admin: AdminClient, topic: str, partitions: Iterable[int], *,
                   timeout: float = 10.0) -> dict[int, int]:
    """Each partition's last stable offset: where a read_committed reader ends now. Asked of
    the admin client's own connection: a consumer's watermark query queues behind its parked
    fetch (up to fetch.wait.max.ms per partition)."""
    futures = admin.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
        isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout)
    return {tp.partition: f.result().offset for tp, f in futures.items()}


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


def group_members(bootstrap: str, group_id: str, *, timeout: float = 10.0) -> int:
    """How many consumers are in the group now (0 when nobody consumes)."""
    # log_level 4: librdkafka's info lines about purged background events are noise here.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    description = admin.describe_consumer_groups([group_id], request_timeout=timeout)[group_id]
    return len(description.result(timeout).members)


@dataclass(frozen=True)
class GroupShare:
    """One member of a consumer group: who it is and its partitions of a topic, with its lag."""

    instance: str  # group.instance.id (a processor's slot), else the member id
    client: str  # client id and host, as the broker sees them
    partitions: tuple[int, ...]
    lag: int  # committed records of those partitions the group has not committed yet


def group_shares(bootstrap: str, group_id: str, topic: str, *,
                 timeout: float = 10.0) -> list[GroupShare]:
    """Each member of the group with its partitions of `topic` and their lag (end: the last
    stable offset), by instance; all from the broker, no consumer joins anything."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    group = admin.describe_consumer_groups([group_id], request_timeout=timeout)[group_id].result(
        timeout)
    owned = [(m, sorted(tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic))
             for m in group.members]
    everything = sorted({p for _, ps in owned for p in ps})
    if not everything:
        ends: dict[int, int] = {}
        committed: dict[int, int] = {}
    else:
        ends = committed_ends(admin, topic, everything, timeout=timeout)
        committed = {tp.partition: max(tp.offset, 0) for tp in group_offsets(
            admin, group_id, [TopicPartition(topic, p) for p in everything], timeout=timeout)}
    return sorted((GroupShare(m.group_instance_id or m.member_id, f"{m.client_id}@{m.host}",
                              tuple(ps), sum(max(ends[p] - committed.get(p, 0), 0) for p in ps))
                   for m, ps in owned), key=lambda share: share.instance)


def unstable_offsets(admin: AdminClient, group_id: str, partitions: Iterable[TopicPartition], *,
                     timeout: float = 10.0) -> list[str]:
    """Which of the partitions' committed offsets the group coordinator holds as pending (an
    open transaction's): "topic[partition]" each."""
    listed = group_offsets(admin, group_id, partitions, require_stable=True, timeout=timeout)
    return [f"{tp.topic}[{tp.partition}]" for tp in listed
            if tp.error is not None and tp.error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT]


def group_offsets(admin: AdminClient, group_id: str, partitions: Iterable[TopicPartition], *,
                  require_stable: bool = False, timeout: float) -> list[TopicPartition]:
    """The group's committed offset of each partition, as the group coordinator lists it:
    without require_stable, the offsets committed for good, an open transaction's pending ones
    not waited for (a consumer's committed() waits for them, and for ever when the coordinator
    lost a transaction's marker)."""
    request = ConsumerGroupTopicPartitions(
        group_id, [TopicPartition(tp.topic, tp.partition) for tp in partitions])
    result = admin.list_consumer_group_offsets([request], require_stable=require_stable,
                                               request_timeout=timeout)
    return list(result[group_id].result(timeout).topic_partitions)


def topic_reader(bootstrap: str, purpose: str, **overrides: Any) -> Consumer:
    """A read_committed consumer that reports each partition's end, in a consumer group of its
    own (named after `purpose`) that commits nothing; for reading topics whole."""
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"seatflow-{purpose}-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        # Reading as fast as it can: a full queue pauses fetching for 10 ms, not a second.
        "fetch.queue.backoff.ms": 10,
        **overrides,
    })


def read_topic(bootstrap: str, topic: str, handle: Callable[[Message], None], *,
               purpose: str, start: Mapping[int, int] | None = None) -> int:
    """Feed every committed record of topic, start (or `start`, as read_to_end) to current end,
    to handle; the count read.

    A consumer group of its own (named after `purpose`) that commits nothing.
    """
    consumer = topic_reader(bootstrap, purpose)
    try:
        return read_to_end(consumer, topic, handle, start=start)
    finally:
        consumer.close()
