"""The batch engine (pure): what a batch publishes, what waits, what a failed batch undoes."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from pipelines.avro import RecordWriter
from pipelines.avro.schemas import load_schema
from pipelines.partitioning import event_partition
from pipelines.processor.aggregate import Availability
from pipelines.processor.core import SeatChange
from pipelines.processor.engine import (
    Batch,
    BatchEngine,
    Encoders,
    OutputTopics,
    ReferenceChange,
    Truncate,
    Undecodable,
)
from pipelines.processor.records import parse_deleted_header
from pipelines.processor.reference import EventRef, PriceLevelRef, Reference, SeatRef, SectionRef

pytestmark = pytest.mark.unit

CDC = "cdc.ticketing.seat_inventory"
TOPICS = OutputTopics("seat", "section", "event", "dead", "anomaly")


def writer(subject: str) -> RecordWriter:
    return RecordWriter(json.loads(load_schema(subject).text))


def read(subject: str, data: bytes) -> Any:
    schema = fastavro.parse_schema(json.loads(load_schema(subject).text))
    return fastavro.schemaless_reader(io.BytesIO(data), schema, None)


ENCODERS = Encoders(*(writer(s) for s in (
    "seat-availability-key", "seat-availability-value", "section-availability-key",
    "section-availability-value", "event-availability-key", "event-availability-value",
    "seatflow.dead-letter-value", "seatflow.anomalies-key", "seatflow.anomalies-value")))


class Msg:
    """A consumed record, as the engine reads it (the shell gives it confluent_kafka's)."""

    def __init__(self, offset: int, value: bytes | None = b"change", topic: str = CDC) -> None:
        self._offset, self._value, self._topic = offset, value, topic

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return b"k"

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list:
        return []

    def timestamp(self) -> tuple[int, int]:
        return (1, 5)


def reference() -> Reference:
    return Reference(events={1: EventRef("e", "on_sale")}, sections={10: SectionRef("101")},
                     seats={s: SeatRef(10, "A", s) for s in (1, 2, 3)},
                     price_levels={1: PriceLevelRef(1, "P1", Decimal("50.00"))})


def change(seat: int, status: str, version: int, *, op: str = "u", lsn: int,
           price: str = "50.00") -> SeatChange:
    expires = datetime(2030, 1, 1, tzinfo=UTC) if status == "HELD" else None
    return SeatChange(op, 1, seat, None if op == "d" else status, 1, Decimal(price), expires,  # type: ignore[arg-type]
                      version, lsn, 1_000, False)


class Out(list):
    def __call__(self, topic: str, value: bytes | None, key: bytes | None,
                 headers: list | None, partition: int | None = None) -> None:
        self.append((topic, value, key, headers, partition))

    def of(self, topic: str) -> list:
        return [r for r in self if r[0] == topic]


def engine(**kw: Any) -> BatchEngine:
    return BatchEngine(Availability(), reference(), ENCODERS, kw.get("topics", TOPICS),
                       reference_wait_ms=kw.get("wait", 1000))


def batch(e: BatchEngine, now: int, out: Out, *changes: tuple[int, SeatChange]) -> Batch:
    b = e.begin(now, len(changes), out)
    for offset, c in changes:
        e.seat_change(b, Msg(offset), c, now)
    e.finish(b)
    return b


def test_a_seat_change_publishes_the_seat_its_section_and_its_event() -> None:
    e, out = engine(), Out()
    batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)))
    seat = read("seat-availability-value", out.of("seat")[0][1])
    assert (seat["status"], seat["section_code"], seat["source_version"]) == ("OPEN", "101", 1)
    section = read("section-availability-value", out.of("section")[0][1])
    assert (section["open"], section["lowest_open_price"]) == (1, Decimal("50.00"))
    assert read("event-availability-value", out.of("event")[0][1])["total"] == 1


def test_an_events_records_go_to_its_cdc_partition_in_every_co_partitioned_topic() -> None:
    e, out = engine(topics=OutputTopics("seat", "section", "event", "dead", "anomaly", 6)), Out()
    batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)), (1, change(1, "SOLD", 2, lsn=2)))
    by_topic = {r[0]: r[4] for r in out}
    assert set(by_topic) == {"seat", "section", "event", "anomaly"}
    assert set(by_topic.values()) == {event_partition(1, 6)}
    # Without a partition count the producer's partitioner decides.
    e, out = engine(), Out()
    batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)))
    assert {r[4] for r in out} == {None}


def test_a_box_office_sale_is_published_with_its_anomaly_in_the_same_batch() -> None:
    e, out = engine(), Out()
    batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)), (1, change(1, "SOLD", 2, lsn=2)))
    assert [read("seat-availability-value", r[1])["status"] for r in out.of("seat")] == [
        "OPEN", "SOLD"]
    [anomaly] = [read("seatflow.anomalies-value", r[1]) for r in out.of("anomaly")]
    assert (anomaly["rule"], anomaly["before_status"], anomaly["after_status"],
            anomaly["source_offset"]) == ("illegal_transition", "OPEN", "SOLD", 1)


def test_a_change_waits_for_its_seat_and_later_changes_of_the_seat_wait_behind_it() -> None:
    e, out = engine(wait=10_000), Out()
    batch(e, 10, out, (5, change(9, "OPEN", 1, op="c", lsn=1)),
          (6, change(9, "OPEN", 1, op="d", lsn=2)), (7, change(1, "OPEN", 1, op="c", lsn=3)))
    assert [read("seat-availability-key", r[2])["seat_id"] for r in out.of("seat")] == [1]
    assert e.commit_floors() == {(CDC, 0): 5}  # the waiting change's offset is not committed
    e.reference.seats[9] = SeatRef(10, "B", 9)  # the seat arrives
    out.clear()
    batch(e, 20, out)
    assert [r[1] is None for r in out.of("seat")] == [False, True]  # the insert, then the delete
    assert parse_deleted_header(out.of("seat")[1][3]) is not None
    assert (1, 9) not in e.availability.seats and e.commit_floors() == {}


def test_a_seat_that_never_arrives_is_published_after_the_wait_with_an_anomaly() -> None:
    e, out = engine(wait=1000), Out()
    batch(e, 0, out, (0, change(9, "OPEN", 1, op="c", lsn=1)))
    assert not out.of("seat")
    batch(e, 999, out)
    assert not out.of("seat")
    batch(e, 1000, out)
    seat = read("seat-availability-value", out.of("seat")[0][1])
    assert seat["section_code"] is None and seat["source_version"] == 1
    assert [read("seatflow.anomalies-value", r[1])["rule"] for r in out.of("anomaly")] == [
        "unresolved_reference"]


def test_a_record_the_output_schema_cannot_hold_is_dead_lettered_and_undone() -> None:
    e, out = engine(), Out()
    batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)))
    out.clear()
    b = batch(e, 20, out, (1, change(1, "HELD", 2, lsn=2, price="123456789.00")))
    [letter] = [read("seatflow.dead-letter-value", r[1]) for r in out.of("dead")]
    assert (letter["reason"], letter["source_offset"]) == ("unencodable", 1)
    assert "precision" in letter["error_message"]
    assert not out.of("seat") and b.stats.dead_lettered == 1
    assert e.availability.seats[(1, 1)].status == "OPEN"  # as published


def test_a_truncate_sends_a_tombstone_per_seat_and_zero_counts() -> None:
    e, out = engine(), Out()
    batch(e, 10, out, *((i, change(s, "OPEN", 1, op="c", lsn=s)) for i, s in enumerate((1, 2, 3))))
    out.clear()
    b = e.begin(20, 1, out)
    e.truncate(b, Msg(9), {"op": "t", "source": {"lsn": 100, "ts_ms": 15}})
    e.finish(b)
    assert [r[1] for r in out.of("seat")] == [None, None, None]
    assert all(parse_deleted_header(r[3]).lsn == 100 for r in out.of("seat"))  # type: ignore[union-attr]
    section = read("section-availability-value", out.of("section")[0][1])
    assert (section["open"], section["held"], section["sold"]) == (0, 0, 0)
    assert read("event-availability-value", out.of("event")[0][1])["total"] == 0


def test_an_aborted_batch_is_undone_and_its_waiting_changes_are_dropped() -> None:
    e, out = engine(), Out()
    batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)))
    before = dict(e.availability.seats)
    b = batch(e, 20, out, (1, change(1, "HELD", 2, lsn=2)), (2, change(2, "OPEN", 1, op="c", lsn=3)),
              (3, change(9, "OPEN", 1, op="c", lsn=4)), (4, change(1, "OPEN", 1, op="d", lsn=5)))
    e.abort(b)
    assert e.availability.seats == before and e.availability.deleted == {}
    assert e.pending == [] and e.availability.events[1].total == 1


def test_a_revoked_partition_takes_its_events_and_their_waiting_changes_along() -> None:
    e, out = engine(topics=OutputTopics("seat", "section", "event", "dead", "anomaly", 6)), Out()
    batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)),
          (1, change(99, "OPEN", 1, op="c", lsn=2)))  # seat 99 is unknown: it waits
    assert e.availability.seats and e.pending
    e.revoke(CDC, [event_partition(1, 6) + 1])  # another partition: nothing moves
    assert e.availability.seats and e.pending
    e.revoke(CDC, [0])  # Msg says partition 0: its waiting change goes
    assert not e.pending and e.availability.seats
    e.revoke(CDC, [event_partition(1, 6)])  # event 1's partition: its seats and counts go
    assert not e.availability.seats and not e.availability.events


def test_a_batch_applies_each_record_as_decoded_in_order() -> None:
    e, out = engine(), Out()
    b = e.begin(10, 6, out)
    e.apply(b, [Msg(i) for i in range(6)], [
        change(1, "OPEN", 1, op="c", lsn=1),
        None,  # the tombstone after a delete: nothing
        ReferenceChange("seats", {"op": "c", "after": {"seat_id": 4, "section_id": 10,
                                                       "row_label": "B", "seat_number": 4}}),
        change(4, "OPEN", 1, op="c", lsn=2),  # the seat the reference change brought
        Undecodable("bad_op", ValueError("op='x'")),
        Truncate({"op": "t", "source": {"lsn": 3, "ts_ms": 9}}),
    ])
    e.finish(b)
    seats = [(read("seat-availability-key", r[2])["seat_id"], r[1] is None) for r in out.of("seat")]
    assert seats == [(1, False), (4, False), (1, True), (4, True)]
    [letter] = [read("seatflow.dead-letter-value", r[1]) for r in out.of("dead")]
    assert (letter["reason"], letter["source_offset"]) == ("bad_op", 4)
    assert (b.stats.records_out, b.stats.dead_lettered) == (4, 1) and not e.pending


def test_a_committed_batch_says_how_long_its_changes_took_since_their_commit() -> None:
    e, out = engine(), Out()
    b = batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)),
              (1, change(2, "OPEN", 1, op="c", lsn=2)._replace(committed_at_ms=1_400)),
              (2, change(3, "OPEN", 1, op="c", lsn=3)._replace(committed_at_ms=1_900)))
    stats = e.done(b, 2_000)
    assert (stats.latency_p50_ms, stats.latency_max_ms) == (600, 1_000)
    assert e.done(batch(e, 20, out), 3_000).latency_max_ms == 0  # nothing published


def test_assigned_partitions_take_their_events_from_the_published_state() -> None:
    topics = OutputTopics("seat", "section", "event", "dead", "anomaly", 6)
    first, second = 1, next(i for i in range(2, 100) if event_partition(i, 6) != event_partition(1, 6))
    e, out = engine(topics=topics), Out()
    batch(e, 10, out, (0, change(1, "OPEN", 1, op="c", lsn=1)))
    published = Availability()
    published.put((first, 2), e.availability.seats[(first, 1)])
    published.put((second, 3), e.availability.seats[(first, 1)])
    taken = e.take_over([event_partition(first, 6)], published)
    # What the engine held of the assigned partition's events is replaced; the other
    # partition's event in the published state is not this processor's.
    assert set(taken.seats) == set(e.availability.seats) == {(first, 2)}
    assert set(e.availability.events) == {first}
