"""Where topics end and where consumer groups stand: offsets, lag and members, all asked of the
admin API (no consumer is made, and none joins a group, to find them out)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from pipelines.kafka import clients
from pipelines.settings import Settings

__all__ = [
    "GroupShare",
    "committed_ends",
    "end_offsets",
    "group_committed",
    "group_lag",
    "group_members",
    "group_offsets",
    "group_shares",
    "unstable_offsets",
]


def _admin(settings: Settings) -> AdminClient:
    # log_level 4: librdkafka's info lines about purged background events are noise here.
    return clients.admin(settings, log_level=4)


def _partitions(admin: AdminClient, topic: str, timeout: float) -> list[int]:
    """The topic's partitions (none when it does not exist). From every topic's metadata, not a
    request naming the topic: the admin client asks as a producer does, and the broker may
    create a topic a producer's metadata request names (auto.create.topics.enable)."""
    meta = admin.list_topics(timeout=timeout).topics.get(topic)
    return [] if meta is None or meta.error is not None else sorted(meta.partitions)


def _latest(admin: AdminClient, topic: str, partitions: Iterable[int], isolation: IsolationLevel,
            timeout: float) -> dict[int, int]:
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}
    if not request:
        return {}
    futures = admin.list_offsets(request, isolation_level=isolation, request_timeout=timeout)
    return {tp.partition: f.result().offset for tp, f in futures.items()}


def end_offsets(settings: Settings, topic: str, *, timeout: float = 10.0,
                admin: AdminClient | None = None) -> dict[int, int]:
    """High watermark of every partition of topic (empty when the topic does not exist). A
    caller that asks often passes its own `admin`: each new client logs in to the broker again."""
    admin = admin or _admin(settings)
    return _latest(admin, topic, _partitions(admin, topic, timeout),
                   IsolationLevel.READ_UNCOMMITTED, timeout)


def committed_ends(admin: AdminClient, topic: str, partitions: Iterable[int], *,
                   timeout: float = 10.0) -> dict[int, int]:
    """Each partition's last stable offset: where a read_committed reader ends now. Asked of
    the admin client's own connection: a consumer's watermark query queues behind its parked
    fetch (up to fetch.wait.max.ms per partition)."""
    return _latest(admin, topic, partitions, IsolationLevel.READ_COMMITTED, timeout)


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


def unstable_offsets(admin: AdminClient, group_id: str, partitions: Iterable[TopicPartition], *,
                     timeout: float = 10.0) -> list[str]:
    """Which of the partitions' committed offsets the group coordinator holds as pending (an
    open transaction's): "topic[partition]" each."""
    listed = group_offsets(admin, group_id, partitions, require_stable=True, timeout=timeout)
    return [f"{tp.topic}[{tp.partition}]" for tp in listed
            if tp.error is not None and tp.error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT]


def _committed(admin: AdminClient, group_id: str, topic: str, partitions: Iterable[int], *,
               timeout: float) -> dict[int, int]:
    """The group's committed offset of each partition (0 where it committed none)."""
    wanted = [TopicPartition(topic, p) for p in partitions]
    if not wanted:  # the admin API refuses an empty list
        return {}
    return {tp.partition: max(tp.offset, 0)
            for tp in group_offsets(admin, group_id, wanted, timeout=timeout)}


def group_committed(settings: Settings, group_id: str, topic: str, *,
                    timeout: float = 10.0) -> dict[int, int]:
    """The group's committed offset of every partition of topic (0 where it committed none)."""
    admin = _admin(settings)
    return _committed(admin, group_id, topic, _partitions(admin, topic, timeout), timeout=timeout)


def group_lag(settings: Settings, group_id: str, topic: str, *, timeout: float = 10.0) -> int:
    """Records of topic the group has not committed yet (its whole length if it committed none)."""
    admin = _admin(settings)
    ends = _latest(admin, topic, _partitions(admin, topic, timeout),
                   IsolationLevel.READ_UNCOMMITTED, timeout)
    committed = _committed(admin, group_id, topic, ends, timeout=timeout)
    return sum(end - committed.get(p, 0) for p, end in ends.items())


def group_members(settings: Settings, group_id: str, *, timeout: float = 10.0) -> int:
    """How many consumers are in the group now (0 when nobody consumes)."""
    # Held until the result: an admin client dropped at once is destroyed with the request in
    # flight, which then never completes (seen with SASL's extra round trips: every call waited
    # out its timeout).
    admin = _admin(settings)
    description = admin.describe_consumer_groups([group_id], request_timeout=timeout)
    return len(description[group_id].result(timeout).members)


@dataclass(frozen=True)
class GroupShare:
    """One member of a consumer group: who it is and its partitions of a topic, with its lag."""

    instance: str  # group.instance.id (a processor's slot), else the member id
    client: str  # client id and host, as the broker sees them
    partitions: tuple[int, ...]
    lag: int  # committed records of those partitions the group has not committed yet


def group_shares(settings: Settings, group_id: str, topic: str, *,
                 timeout: float = 10.0) -> list[GroupShare]:
    """Each member of the group with its partitions of `topic` and their lag (end: the last
    stable offset), by instance; all from the broker, no consumer joins anything."""
    admin = _admin(settings)
    group = admin.describe_consumer_groups([group_id], request_timeout=timeout)[group_id].result(
        timeout)
    owned = [(m, sorted(tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic))
             for m in group.members]
    everything = sorted({p for _, ps in owned for p in ps})
    ends = committed_ends(admin, topic, everything, timeout=timeout)
    committed = _committed(admin, group_id, topic, everything, timeout=timeout)
    return sorted((GroupShare(m.group_instance_id or m.member_id, f"{m.client_id}@{m.host}",
                              tuple(ps), sum(max(ends[p] - committed.get(p, 0), 0) for p in ps))
                   for m, ps in owned), key=lambda share: share.instance)
