"""The partition of an event's records in the seat_inventory CDC topic, as Debezium chooses it.

One event's records must be in one partition of every topic that carries them, whoever writes
them: the processor keeps an event's seat and section counts by reading its changes in order,
and Kafka orders records only within a partition. Debezium's PartitionRouting SMT
(`io.debezium.transforms.partitions.PartitionRouting`) picks the partition of each change of
`ticketing.seat_inventory` from its `event_id`; the database backfill produces into the same
topic and must pick the same partition, so it computes it here, in the SMT's own arithmetic
(Debezium 3.6.1.Final, `debezium-connect-plugins/.../transforms/partitions/PartitionRouting.java`):

    totalHashCode  = sum of value.hashCode() over the configured fields, in Java int arithmetic
    normalizedHash = totalHashCode & Integer.MAX_VALUE, and 0 if that is Integer.MAX_VALUE
    partition      = normalizedHash % partition.topic.num

With the `java` hash function, `hashCode()` of a PostgreSQL bigint (a `java.lang.Long` in the
Connect struct) is `Long.hashCode`: `(int) (value ^ (value >>> 32))`. The values' hashes are
summed from 0: it is not `List.hashCode` (which would start from 31 * 1), so a list emulation
would pick another partition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "EVENT_FIELD",
    "HASH_FUNCTION",
    "PREDICATE_NAME",
    "SMT_CLASS",
    "TOPIC_PREDICATE_CLASS",
    "TRANSFORM_NAME",
    "event_partition",
    "java_long_hash",
    "partition_routing_config",
    "smt_partition",
]

SMT_CLASS = "io.debezium.transforms.partitions.PartitionRouting"
TOPIC_PREDICATE_CLASS = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"
TRANSFORM_NAME = "partition"
PREDICATE_NAME = "seatInventoryTopic"
# `change` is the SMT's own prefix: `before` for a delete, `after` for every other operation.
# `after.event_id` alone fails on a delete (its `after` is null: the SMT dereferences it and the
# task fails with "Unprocessable message"), `before.event_id` alone on an insert or a snapshot
# read. seat_inventory has REPLICA IDENTITY FULL, and event_id is in its primary key, so a
# delete's `before` always holds it.
EVENT_FIELD = "change.event_id"
# `java`, not `murmur`: Long.hashCode is specified by the JDK and cannot change under us, while
# Debezium's MurmurHash3 is its own class (a later release could change its output and silently
# move every event to another partition than the backfill's). Murmur would not spread ids any
# better either: the SMT feeds it Long.hashCode, the same 32 bits (and event ids come from an
# identity sequence, which `java` deals round the partitions). Set explicitly anyway: the
# SMT reads any unknown value as `java`, so a misspelt `murmur` would also fall back silently.
HASH_FUNCTION = "java"
DEFAULT_TOPIC = "cdc.ticketing.seat_inventory"

_INT32_MAX = 0x7FFF_FFFF
_UINT32 = 0xFFFF_FFFF
_UINT64 = 0xFFFF_FFFF_FFFF_FFFF
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _int32(value: int) -> int:
    """The Java int with the low 32 bits of value (two's complement wrap-around)."""
    value &= _UINT32
    return value - (1 << 32) if value > _INT32_MAX else value


def _check_int(name: str, value: object) -> int:
    # bool is an int to Python but never a bigint to Debezium.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def java_long_hash(value: int) -> int:
    """`java.lang.Long.hashCode(value)`: `(int) (value ^ (value >>> 32))`, a signed 32-bit int."""
    value = _check_int("value", value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{value} does not fit a Java long (PostgreSQL bigint)")
    bits = value & _UINT64  # the long's two's complement bits; >>> 32 shifts in zeros
    return _int32(bits ^ (bits >> 32))


def _check_partitions(partitions: int) -> int:
    partitions = _check_int("partitions", partitions)
    # partition.topic.num is a positive Java int.
    if not 1 <= partitions <= _INT32_MAX:
        raise ValueError(f"partitions must be between 1 and {_INT32_MAX}, not {partitions}")
    return partitions


def smt_partition(hashes: Iterable[int], partitions: int) -> int:
    """PartitionRouting.computePartition: the partition for the given fields' Java hash codes."""
    partitions = _check_partitions(partitions)
    total = 0
    for h in hashes:  # Stream.reduce(0, Integer::sum): overflow wraps
        total = _int32(total + h)
    normalized = total & _INT32_MAX  # drops the sign bit; Math.abs would not for Integer.MIN_VALUE
    if normalized == _INT32_MAX:  # the SMT's own special case, kept so the results agree
        normalized = 0
    return normalized % partitions  # both non-negative: Java's % and Python's agree


def event_partition(event_id: int, partitions: int) -> int:
    """The partition PartitionRouting (configured by partition_routing_config) gives every change
    of a seat of event_id, in a topic of `partitions` partitions."""
    return smt_partition([java_long_hash(event_id)], partitions)


def partition_routing_config(partitions: int, *, topic: str = DEFAULT_TOPIC) -> dict[str, str]:
    """The connector config entries that route the CDC topic `topic` (of `partitions`
    partitions) by event_id, as event_partition computes it.

    `transforms` and `predicates` are lists of the whole connector: merge them with any other
    transform or predicate it has. `partitions` must be the topic's actual partition count; when
    the topic grows, change it (and every event moves), or a record goes to a partition that the
    backfill does not compute.
    """
    partitions = _check_partitions(partitions)
    prefix = f"transforms.{TRANSFORM_NAME}"
    return {
        "transforms": TRANSFORM_NAME,
        f"{prefix}.type": SMT_CLASS,
        f"{prefix}.partition.payload.fields": EVENT_FIELD,
        f"{prefix}.partition.topic.num": str(partitions),
        f"{prefix}.partition.hash.function": HASH_FUNCTION,
        # Only this topic: the other tables' topics have their own partition counts (a partition
        # number past a topic's count fails the task), and some of them have an event_id too.
        f"{prefix}.predicate": PREDICATE_NAME,
        "predicates": PREDICATE_NAME,
        f"predicates.{PREDICATE_NAME}.type": TOPIC_PREDICATE_CLASS,
        f"predicates.{PREDICATE_NAME}.pattern": re.escape(topic),  # matched against the whole name
        # The SMT passes a tombstone (null value) through without a partition, so the producer
        # puts it by the hash of its serialized key (event_id and seat_id): another partition
        # than its delete, where compaction cannot use it and a reader of that partition may see
        # it before or after the seat's other changes. The delete event carries the change (the
        # processor ignores these tombstones), so Debezium emits none. Connector-wide: no stock
        # predicate selects tombstones of one topic only.
        "tombstones.on.delete": "false",
    }
