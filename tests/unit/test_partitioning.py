"""The backfill's partition of an event equals Debezium's PartitionRouting SMT's.

The vectors follow from the SMT's source (Debezium 3.6.1.Final, PartitionRouting.computePartition:
sum of the fields' hashCode() from 0, `& Integer.MAX_VALUE`, Integer.MAX_VALUE read as 0, then
`% partition.topic.num`) and Java's `Long.hashCode` = `(int) (x ^ (x >>> 32))`. Every one was
checked against real Java (OpenJDK 17): with jshell for `Long.hashCode`, `List.of(123L).hashCode()`
and the SMT's expression, and by running a verbatim copy of computePartition with
`Object::hashCode`. The "orange" vector is Debezium's own PartitionRoutingTest.byDefaultJavaHashIsUsed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.partitioning import (
    event_partition,
    java_long_hash,
    partition_routing_config,
    smt_partition,
)

pytestmark = pytest.mark.unit

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def java_string_hash(s: str) -> int:
    """String.hashCode of a string of BMP characters: s[0]*31^(n-1) + ... + s[n-1], as a Java int."""
    h = 0
    for c in s:
        h = (31 * h + ord(c)) & 0xFFFF_FFFF
    return h - 2**32 if h > INT32_MAX else h


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0),
    (123, 123),
    (INT32_MAX, INT32_MAX),
    (2**31, -(2**31)),  # above 2^31: the int's sign bit is set
    (2**31 + 5, -2147483643),
    (2**32 - 1, -1),
    (2**32, 1),  # the high word is folded into the low one
    (2**32 + 1, 0),
    (1311768467463790320, -2004318072),  # 0x1234567890ABCDF0
    (INT64_MAX, -(2**31)),
    (-1, 0),
    (-2, 1),
    (-(2**31), INT32_MAX),
    (INT64_MIN, -(2**31)),
])
def test_java_long_hash_is_longs_hashcode(value: int, expected: int) -> None:
    assert java_long_hash(value) == expected


@pytest.mark.parametrize(("event_id", "partitions", "expected"), [
    (0, 12, 0),
    (1, 12, 1),
    (7, 12, 7),
    (13, 12, 1),
    (123, 12, 3),  # List.of(123L).hashCode() is 154, which would give 10
    (123, 100, 23),
    (1000003, 12, 7),
    (2147483646, 12, 6),
    (INT32_MAX, 12, 0),  # hash Integer.MAX_VALUE is read as 0: not 2147483647 % 12 == 7
    (INT32_MAX, 100, 0),  # ... not 47
    (INT32_MAX, 5, 0),  # ... not 2
    (2**31, 12, 0),  # hash Integer.MIN_VALUE: & MAX_VALUE leaves 0 (Math.abs would stay negative)
    (2**31 + 5, 12, 5),  # negative hash
    (2**31 + 5, 3, 2),
    (2**32 - 1, 12, 0),  # hash -1: & MAX_VALUE gives MAX_VALUE, read as 0
    (2**32, 12, 1),
    (2**32 + 1, 12, 0),
    (2**32 + 12, 12, 1),  # hash 13
    (6442450941, 12, 4),  # 0x17FFFFFFD: hash 2147483644
    (6442450941, 100, 44),
    (2**53 + 1, 12, 9),
    (2**53 + 1, 100, 53),
    (1311768467463790320, 12, 8),
    (1311768467463790320, 100, 76),
    (1311768467463790320, 3, 2),
    (INT64_MAX, 12, 0),
    (-1, 12, 0),
    (-2, 12, 1),
    (-12, 12, 11),
    (-(2**31), 12, 0),
    (-(2**31) - 1, 12, 0),
    (INT64_MIN, 12, 0),
    (123, 1, 0),
])
def test_event_partition_matches_the_smt(event_id: int, partitions: int, expected: int) -> None:
    assert event_partition(event_id, partitions) == expected


def test_several_fields_are_summed_as_debeziums_own_test_expects() -> None:
    # PartitionRoutingTest: fields change.id (1L), change.product ("orange"), 100 partitions -> 39.
    assert java_string_hash("orange") == -1008851410
    assert smt_partition([java_long_hash(1), java_string_hash("orange")], 100) == 39


def test_the_sum_of_hashes_wraps_like_a_java_int() -> None:
    assert smt_partition([INT32_MAX, 1], 12) == 0  # MIN_VALUE
    assert smt_partition([-5, 3], 12) == 6  # -2 & MAX_VALUE == 2147483646
    assert smt_partition([java_long_hash(2**31), java_long_hash(2**32)], 12) == 1
    assert smt_partition([], 12) == 0


@pytest.mark.parametrize("partitions", [0, -1, 2**31])
def test_partitions_must_be_a_positive_java_int(partitions: int) -> None:
    with pytest.raises(ValueError):
        event_partition(1, partitions)
    with pytest.raises(ValueError):
        partition_routing_config(partitions)


@pytest.mark.parametrize("event_id", [INT64_MAX + 1, INT64_MIN - 1])
def test_an_event_id_must_be_a_bigint(event_id: int) -> None:
    with pytest.raises(ValueError):
        event_partition(event_id, 12)


def test_non_integers_are_refused() -> None:
    with pytest.raises(TypeError):
        event_partition(True, 12)
    with pytest.raises(TypeError):
        event_partition("1", 12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        event_partition(1, 12.0)  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(st.integers(INT64_MIN, INT64_MAX), st.integers(1, INT32_MAX))
def test_the_partition_is_in_range_and_deterministic(event_id: int, partitions: int) -> None:
    p = event_partition(event_id, partitions)
    assert 0 <= p < partitions
    assert event_partition(event_id, partitions) == p


@settings(max_examples=500, deadline=None)
@given(st.integers(INT64_MIN, INT64_MAX), st.integers(1, 1024))
def test_ids_with_the_same_long_hash_share_a_partition(event_id: int, partitions: int) -> None:
    # Long.hashCode(x) == Long.hashCode(x ^ ((k << 32) | k)) for any 32-bit k: both words flip alike.
    k = 0x9E37_79B9
    other = (event_id ^ ((k << 32) | k)) & 0xFFFF_FFFF_FFFF_FFFF
    other = other - 2**64 if other > INT64_MAX else other
    assert event_partition(other, partitions) == event_partition(event_id, partitions)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, INT32_MAX - 1), st.integers(1, 1024))
def test_a_non_negative_int_id_is_its_own_hash(event_id: int, partitions: int) -> None:
    assert event_partition(event_id, partitions) == event_id % partitions


def test_the_connector_config() -> None:
    assert partition_routing_config(12) == {
        "transforms": "partition",
        "transforms.partition.type": "io.debezium.transforms.partitions.PartitionRouting",
        "transforms.partition.partition.payload.fields": "change.event_id",
        "transforms.partition.partition.topic.num": "12",
        "transforms.partition.partition.hash.function": "java",
        "transforms.partition.predicate": "seatInventoryTopic",
        "predicates": "seatInventoryTopic",
        "predicates.seatInventoryTopic.type":
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        "predicates.seatInventoryTopic.pattern": r"cdc\.ticketing\.seat_inventory",
        "tombstones.on.delete": "false",
    }
    assert partition_routing_config(3, topic="prod.ticketing.seat_inventory")[
        "predicates.seatInventoryTopic.pattern"] == r"prod\.ticketing\.seat_inventory"
    assert all(isinstance(v, str) for v in partition_routing_config(1).values())


def test_the_connector_file_routes_seat_inventory_as_event_partition_computes() -> None:
    """connectors/ticketing-host.json carries partition_routing_config's entries, with the
    partition count from the settings (the Connect worker's SEATFLOW_PARTITIONS)."""
    config = json.loads((Path(__file__).parents[2] / "connectors" / "ticketing-host.json")
                        .read_text())["config"]
    expected = partition_routing_config(6)
    expected["transforms.partition.partition.topic.num"] = "${env:SEATFLOW_PARTITIONS}"
    assert {k: config.get(k) for k in expected} == expected
