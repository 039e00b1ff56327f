"""The database decides (issue 12), on the real stack: every case ends with the availability
topics equal to the ticketing host, seat by seat and count by count, and the stream running."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from pipelines.avro import AvroDecoder, AvroEncoder, registry_client
from pipelines.avro.schemas import load_schema
from pipelines.backfill import backfill_event
from pipelines.deploy import wait_captured, wait_caught_up
from pipelines.host.seed import seed_host
from pipelines.kafka import clients
from pipelines.kafka.admin import ensure_topics
from pipelines.kafka.groups import group_committed, group_lag
from pipelines.kafka.topics import (
    ANOMALIES,
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    TopicSpec,
    cdc_topic,
)
from pipelines.processor.config import GROUP_ID, OffsetsLostError, ProcessorConfig
from pipelines.processor.runner import run_processor
from pipelines.reconcile import event_ids, reconcile_events
from pipelines.settings import Settings
from pipelines.stack.layout import StackLayout
from pipelines.stack.supervisor import Supervisor
from tests.integration.conftest import (
    ProcessorThread,
    end_offsets,
    records_since,
    wait_for,
)

pytestmark = pytest.mark.integration


# --- helpers ----------------------------------------------------------------------------------

def decoder(settings: Settings) -> AvroDecoder:
    return AvroDecoder(registry_client(settings))


class Marks:
    """End offsets of the topics a test reads back, taken before it acts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seat = end_offsets(settings, SEAT_AVAILABILITY)
        self.anomalies = end_offsets(settings, ANOMALIES)
        self.dead = end_offsets(settings, DEAD_LETTER)

    def seat_records(self, event_id: int, seat_id: int) -> list[dict | None]:
        d = decoder(self.settings)
        out = []
        for msg in records_since(self.settings, SEAT_AVAILABILITY, self.seat):
            key = d.decode(msg.key())
            if (key["event_id"], key["seat_id"]) == (event_id, seat_id):
                out.append(d.decode(msg.value()))
        return out

    def anomaly_records(self) -> list[dict]:
        d = decoder(self.settings)
        return [d.decode(m.value()) for m in records_since(self.settings, ANOMALIES,
                                                           self.anomalies)]

    def dead_letters(self) -> list[dict]:
        d = decoder(self.settings)
        return [d.decode(m.value()) for m in records_since(self.settings, DEAD_LETTER, self.dead)]


def settle_and_reconcile(settings: Settings, events: set[int] | None = None) -> None:
    """Wait until every committed change is published, then compare with the database."""
    wait_caught_up(settings, timeout_s=180)
    results = reconcile_events(settings, events if events is not None else event_ids(settings))
    assert all(r.passed for r in results.values()), [r.report() for r in results.values()]


def open_seat(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute("SELECT event_id, seat_id FROM ticketing.seat_inventory"
                       " WHERE status = 'open' ORDER BY random() LIMIT 1").fetchone()
    assert row is not None, "no open seat left (`seatflow seed --reset`)"
    return row[0], row[1]


def bump_price(conn: psycopg.Connection[Any], event_id: int, seat_id: int) -> None:
    """A plain change of one seat (its price), so that it has a new version to publish."""
    conn.execute("UPDATE ticketing.seat_inventory SET price = price + 1"
                 " WHERE event_id = %s AND seat_id = %s", (event_id, seat_id))


def new_hold(conn: psycopg.Connection[Any], event_id: int, *, expires: str,
             status: str = "active") -> int:
    row = conn.execute(
        "INSERT INTO ticketing.holds (event_id, buyer_id, seat_count, expires_at, status,"
        " closed_at) VALUES (%s, 4242, 1, now() + %s::interval, %s,"
        " CASE WHEN %s = 'active' THEN NULL ELSE now() END) RETURNING hold_id",
        (event_id, expires, status, status)).fetchone()
    assert row is not None
    return int(row[0])


def new_order(conn: psycopg.Connection[Any], event_id: int, hold_id: int) -> int:
    row = conn.execute(
        "INSERT INTO ticketing.orders (event_id, buyer_id, hold_id, seat_count, total)"
        " VALUES (%s, 4242, %s, 1, 0) RETURNING order_id", (event_id, hold_id)).fetchone()
    assert row is not None
    return int(row[0])


def db_seat(conn: psycopg.Connection[Any], event_id: int, seat_id: int) -> tuple[str, int] | None:
    row = conn.execute("SELECT status, version FROM ticketing.seat_inventory"
                       " WHERE event_id = %s AND seat_id = %s", (event_id, seat_id)).fetchone()
    return None if row is None else (row[0].upper(), row[1])


@pytest.fixture
def stream(pipeline: Settings) -> Iterator[ProcessorThread]:
    """A processor of the test's own, caught up; checked for errors at the end."""
    with ProcessorThread(pipeline) as running:
        wait_caught_up(pipeline, timeout_s=300)
        yield running
    assert running.error is None, f"processor failed: {running.error!r}"


# --- rule-breaking changes the database committed ----------------------------------------------

def test_a_box_office_sale_is_published_sold_with_an_anomaly(pipeline: Settings,
                                                             stream: ProcessorThread) -> None:
    settings = pipeline
    marks = Marks(settings)
    with psycopg.connect(settings.pg_dsn()) as conn:
        event_id, seat_id = open_seat(conn)
        hold_id = new_hold(conn, event_id, expires="10 minutes", status="converted")
        order_id = new_order(conn, event_id, hold_id)
        conn.execute("UPDATE ticketing.seat_inventory SET status = 'sold', order_id = %s"
                     " WHERE event_id = %s AND seat_id = %s", (order_id, event_id, seat_id))
        conn.commit()
        truth = db_seat(conn, event_id, seat_id)
    settle_and_reconcile(settings, {event_id})
    published = marks.seat_records(event_id, seat_id)
    assert published and published[-1] is not None
    assert (published[-1]["status"], published[-1]["source_version"]) == truth == ("SOLD", truth[1])
    rules = [(a["rule"], a["before_status"], a["after_status"]) for a in marks.anomaly_records()
             if (a["event_id"], a["seat_id"]) == (event_id, seat_id)]
    assert rules == [("illegal_transition", "OPEN", "SOLD")]
    assert not marks.dead_letters()


def test_a_hold_expired_at_commit_then_sold_is_published_as_committed(
        pipeline: Settings, stream: ProcessorThread) -> None:
    settings = pipeline
    marks = Marks(settings)
    with psycopg.connect(settings.pg_dsn()) as conn:
        event_id, seat_id = open_seat(conn)
        hold_id = new_hold(conn, event_id, expires="-1 minute")
        conn.execute("UPDATE ticketing.seat_inventory SET status = 'held', hold_id = %s,"
                     " hold_expires_at = now() - interval '1 minute'"
                     " WHERE event_id = %s AND seat_id = %s", (hold_id, event_id, seat_id))
        conn.commit()
        order_id = new_order(conn, event_id, hold_id)
        conn.execute("UPDATE ticketing.seat_inventory SET status = 'sold', hold_id = NULL,"
                     " hold_expires_at = NULL, order_id = %s WHERE event_id = %s AND seat_id = %s",
                     (order_id, event_id, seat_id))
        conn.commit()
        truth = db_seat(conn, event_id, seat_id)
    settle_and_reconcile(settings, {event_id})
    published = marks.seat_records(event_id, seat_id)
    assert [p["status"] for p in published if p] == ["HELD", "SOLD"]
    assert published[-1] is not None and published[-1]["source_version"] == truth[1]  # type: ignore[index]
    rules = [a["rule"] for a in marks.anomaly_records()
             if (a["event_id"], a["seat_id"]) == (event_id, seat_id)]
    assert rules == ["hold_expiry"]


def test_alter_table_adding_a_column_and_a_finer_price_scale(pipeline: Settings,
                                                            stream: ProcessorThread) -> None:
    """A price with more decimals than the published schema carries no longer stops the run:
    it is published rounded, with a price_scale anomaly holding the exact value."""
    settings = pipeline
    marks = Marks(settings)
    with psycopg.connect(settings.pg_dsn()) as conn:
        event_id, seat_id = open_seat(conn)
        conn.execute("ALTER TABLE ticketing.seat_inventory ADD COLUMN IF NOT EXISTS note text")
        conn.execute("ALTER TABLE ticketing.seat_inventory ALTER COLUMN price TYPE numeric(10, 3)")
        conn.commit()
        try:
            conn.execute("UPDATE ticketing.seat_inventory SET price = 12.345, note = 'vip'"
                         " WHERE event_id = %s AND seat_id = %s", (event_id, seat_id))
            conn.commit()
            truth = db_seat(conn, event_id, seat_id)
            settle_and_reconcile(settings, {event_id})
        finally:
            conn.rollback()
            conn.execute("ALTER TABLE ticketing.seat_inventory ALTER COLUMN price TYPE numeric(10, 2)")
            conn.execute("ALTER TABLE ticketing.seat_inventory DROP COLUMN IF EXISTS note")
            conn.commit()
    published = marks.seat_records(event_id, seat_id)
    assert published and published[-1] is not None
    assert published[-1]["source_version"] == truth[1]  # type: ignore[index]
    assert str(published[-1]["price"]) == "12.34"
    exact = [a["after_price_exact"] for a in marks.anomaly_records()
             if (a["event_id"], a["seat_id"], a["rule"]) == (event_id, seat_id, "price_scale")]
    assert exact == ["12.345"]
    assert not marks.dead_letters()


# --- deletes ------------------------------------------------------------------------------------

def new_seat(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "INSERT INTO ticketing.seats (venue_id, section_id, row_label, row_index, seat_number)"
        " SELECT venue_id, section_id, row_label, row_index,"
        "        (SELECT max(seat_number) + 1 FROM ticketing.seats)"
        " FROM ticketing.seats ORDER BY seat_id LIMIT 1 RETURNING seat_id").fetchone()
    assert row is not None
    return int(row[0])


def add_inventory(conn: psycopg.Connection[Any], event_id: int, seat_id: int) -> None:
    conn.execute(
        "INSERT INTO ticketing.seat_inventory (event_id, seat_id, price_level_id, price)"
        " SELECT event_id, %s, price_level_id, price FROM ticketing.seat_inventory"
        " WHERE event_id = %s LIMIT 1", (seat_id, event_id))


def test_a_delete_while_the_insert_waits_for_its_seat_does_not_bring_the_seat_back(
        pipeline: Settings) -> None:
    """Two new seats, each inserted and deleted while the processor does not know the seat yet
    (its seats topic is a copy the test fills by hand): one whose seat arrives later, one whose
    seat never does (published after the wait, with an anomaly). Both end deleted."""
    settings = pipeline
    seats_copy = f"test-seats-{uuid.uuid4()}"
    # A group of its own: a static member that rejoins its group keeps its old assignment even
    # with another subscription. It starts where the CDC topics end now.
    group = f"seatflow-test-{uuid.uuid4()}"
    config = ProcessorConfig.of(settings, reference_wait_ms=12_000, group_id=group,
                                transactional_id=group)
    config = ProcessorConfig(**{**config.__dict__, "reference_topics": {
        **config.reference_topics, "seats": seats_copy}})
    admin = clients.admin(settings)
    # Made before the processor subscribes: a topic made later is seen only at its next
    # metadata refresh.
    ensure_topics(admin, [TopicSpec(seats_copy)])
    starts = [TopicPartition(t, p, o) for t in config.input_topics
              for p, o in end_offsets(settings, t).items()]
    for future in admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, starts)]).values():
        future.result(30)
    marks = Marks(settings)
    seats_topic, topic = cdc_topic(settings, "seats"), cdc_topic(settings, "seat_inventory")
    seats_start = end_offsets(settings, seats_topic)
    with ProcessorThread(settings, config) as running:
        with psycopg.connect(settings.pg_dsn()) as conn:
            event_id, _ = open_seat(conn)
            arrives, never = new_seat(conn), new_seat(conn)
            conn.commit()
            for seat in (arrives, never):
                add_inventory(conn, event_id, seat)
            conn.commit()
            conn.execute("DELETE FROM ticketing.seat_inventory WHERE event_id = %s"
                         " AND seat_id = ANY(%s)", (event_id, [arrives, never]))
            conn.commit()
        d = decoder(settings)

        def seat_records() -> list:
            return [m for m in records_since(settings, seats_topic, seats_start)
                    if m.value() is not None
                    and (d.decode(m.value()).get("after") or {}).get("seat_id") == arrives]
        found = wait_for(seat_records, timeout=10, what="the new seat captured", every=0.1)
        assert marks.seat_records(event_id, arrives) == []  # still waiting for the seat
        producer = clients.producer(settings)
        for msg in found:
            producer.produce(seats_copy, msg.value(), msg.key())
        producer.flush(10)
        wait_for(lambda: marks.seat_records(event_id, never), timeout=60,
                 what="the seat that never arrived to be published after the wait")
        wait_captured(settings, timeout_s=60)
        wait_for(lambda: group_lag(settings, group, topic) == 0, timeout=60,
                 what="the test's processor to catch up")
        results = reconcile_events(settings, {event_id})
        assert all(r.passed for r in results.values()), [r.report() for r in results.values()]
        assert running.error is None
    for seat in (arrives, never):
        published = marks.seat_records(event_id, seat)
        assert [p is None for p in published] == [False, True], (seat, published)
    rules = {(a["seat_id"], a["rule"]) for a in marks.anomaly_records()}
    assert (never, "unresolved_reference") in rules
    assert (arrives, "unresolved_reference") not in rules


def test_a_stale_redelivery_after_a_delete_does_not_bring_the_seat_back(
        pipeline: Settings, stream: ProcessorThread) -> None:
    settings = pipeline
    topic = cdc_topic(settings, "seat_inventory")
    cdc_start = end_offsets(settings, topic)
    marks = Marks(settings)
    with psycopg.connect(settings.pg_dsn()) as conn:
        event_id, seat_id = open_seat(conn)
        bump_price(conn, event_id, seat_id)
        conn.commit()
        d = decoder(settings)

        def update_record() -> list:
            return [m for m in records_since(settings, topic, cdc_start)
                    if m.value() is not None
                    and (d.decode(m.value()).get("after") or {}).get("seat_id") == seat_id]
        old = wait_for(update_record, timeout=60, what="the update captured")[-1]
        conn.execute("DELETE FROM ticketing.seat_inventory WHERE event_id = %s AND seat_id = %s",
                     (event_id, seat_id))
        conn.commit()
    wait_for(lambda: (r := marks.seat_records(event_id, seat_id)) and r[-1] is None, timeout=60,
             what="the delete's tombstone")
    producer = clients.producer(settings)
    # Debezium delivering the update again (to the partition it chose the first time)
    producer.produce(topic, old.value(), old.key(), partition=old.partition())
    producer.flush(10)
    settle_and_reconcile(settings, {event_id})
    published = marks.seat_records(event_id, seat_id)
    assert [p is None for p in published] == [False, True], published


# --- what cannot be read or written at all ------------------------------------------------------

def test_a_1mb_junk_record_is_dead_lettered_by_length_and_hash_and_the_run_goes_on(
        pipeline: Settings, stream: ProcessorThread) -> None:
    settings = pipeline
    marks = Marks(settings)
    junk = b"\xff" + bytes(range(256)) * (1_000_000 // 256)  # no magic byte: not Avro
    producer = clients.producer(settings, **{"message.max.bytes": 1_048_576})
    producer.produce(cdc_topic(settings, "seat_inventory"), junk, b"junk")
    producer.flush(10)
    letters = wait_for(marks.dead_letters, timeout=60, what="the dead letter")
    assert [(x["reason"], x["original_value"], x["original_value_length"], x["original_truncated"])
            for x in letters] == [("undecodable", None, len(junk), True)]
    with psycopg.connect(settings.pg_dsn()) as conn:
        event_id, seat_id = open_seat(conn)
        bump_price(conn, event_id, seat_id)
    settle_and_reconcile(settings, {event_id})
    assert marks.seat_records(event_id, seat_id)


def test_a_poison_record_in_seat_availability_is_skipped_at_start(pipeline: Settings) -> None:
    settings = pipeline
    registry = registry_client(settings)
    key = AvroEncoder(registry, f"{SEAT_AVAILABILITY}-key",
                      load_schema(f"{SEAT_AVAILABILITY}-key").text).encode(
        {"event_id": 1, "seat_id": 987_654_320})
    producer = clients.producer(settings)
    producer.produce(SEAT_AVAILABILITY, b"\x00\x00\x00\x00\x01poison", key)
    producer.flush(10)
    marks = Marks(settings)
    try:
        with ProcessorThread(settings) as running:
            letters = wait_for(marks.dead_letters, timeout=60, what="the poison's dead letter")
            assert [x["reason"] for x in letters] == ["unreadable_state"]
            assert letters[0]["source_topic"] == SEAT_AVAILABILITY
            with psycopg.connect(settings.pg_dsn()) as conn:
                event_id, seat_id = open_seat(conn)
                bump_price(conn, event_id, seat_id)
            wait_for(lambda: marks.seat_records(event_id, seat_id), timeout=60,
                     what="a change published after the poison")
            assert running.error is None
    finally:
        producer.produce(SEAT_AVAILABILITY, None, key)  # the poison is compacted away
        producer.flush(10)


def test_the_registry_stopped_20s_during_a_backlog_holds_the_stream_and_loses_nothing(
        pipeline: Settings, stream: ProcessorThread, caplog: pytest.LogCaptureFixture) -> None:
    settings = pipeline
    caplog.set_level(logging.WARNING, logger="pipelines.avro")
    marks = Marks(settings)
    supervisor = Supervisor(StackLayout.of(settings))
    changed = []
    supervisor.stop("registry")
    try:
        # Connect keeps the schema ids it registered. This processor started after the last
        # change, so its decoder meets the seat_inventory schema id now, with the registry away.
        with psycopg.connect(settings.pg_dsn()) as conn:
            for _ in range(30):
                event_id, seat_id = open_seat(conn)
                bump_price(conn, event_id, seat_id)
                conn.commit()
                changed.append((event_id, seat_id))
        time.sleep(20)
    finally:
        supervisor.start("registry")
    settle_and_reconcile(settings, {e for e, _ in changed})
    retries = [r for r in caplog.records if r.name == "pipelines.avro" and "Retrying" in r.message]
    assert retries, "the processor never waited for the registry"
    assert not marks.dead_letters()
    for event_id, seat_id in changed:
        assert marks.seat_records(event_id, seat_id)


def test_trimmed_offsets_fail_loudly_move_past_the_gap_and_a_backfill_repairs(
        pipeline: Settings) -> None:
    """Changes trimmed by retention while the processor was away: never skipped silently."""
    settings = pipeline
    topic = cdc_topic(settings, "seat_inventory")
    with ProcessorThread(settings):
        wait_caught_up(settings, timeout_s=300)
    with psycopg.connect(settings.pg_dsn()) as conn:
        event_id, seat_id = open_seat(conn)
        bump_price(conn, event_id, seat_id)
    wait_captured(settings, timeout_s=60)
    ends = end_offsets(settings, topic)
    admin = clients.admin(settings)
    for future in admin.delete_records([TopicPartition(topic, p, o) for p, o in ends.items()]
                                       ).values():
        future.result(30)
    with pytest.raises(OffsetsLostError, match="trimmed"):
        run_processor(settings, should_stop=lambda: False, until_end=True)
    committed = group_committed(settings, GROUP_ID, topic)
    assert committed == ends, "the group is moved to the log start, past the gap"
    with ProcessorThread(settings):
        backfill_event(settings, event_id, method="debezium", timeout_s=300)
        settle_and_reconcile(settings, {event_id})


# --- truncate: last, it empties the host (and seeds it again) -----------------------------------

def test_a_truncate_clears_the_availability_with_tombstones_and_zero_counts(
        pipeline: Settings, stream: ProcessorThread) -> None:
    settings = pipeline
    marks = Marks(settings)
    with psycopg.connect(settings.pg_dsn()) as conn:
        events = {e for (e,) in conn.execute(
            "SELECT DISTINCT event_id FROM ticketing.seat_inventory").fetchall()}
        seats = conn.execute("SELECT count(*) FROM ticketing.seat_inventory").fetchone()
        conn.execute("TRUNCATE ticketing.seat_inventory")
    try:
        settle_and_reconcile(settings, events)
        d = decoder(settings)
        tombstones = sum(1 for m in records_since(settings, SEAT_AVAILABILITY, marks.seat)
                         if m.value() is None)
        assert seats is not None and tombstones >= seats[0]
        totals = {}
        for m in records_since(settings, EVENT_AVAILABILITY, {}):
            v = d.decode(m.value())
            totals[v["event_id"]] = v["total"]
        assert all(totals[e] == 0 for e in events)
    finally:
        seed_host(settings, events=1, reset=True)
        settle_and_reconcile(settings)
