"""A seat change travels from PostgreSQL through Debezium and Kafka to seat-availability."""

from __future__ import annotations

import time
from decimal import Decimal

import psycopg
import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipelines.avro import registry_client
from pipelines.kafka.topics import SEAT_AVAILABILITY
from pipelines.settings import Settings
from tests.integration.conftest import ProcessorThread, tail_consumer

pytestmark = pytest.mark.integration

SEATS = 20


def hold_seats(settings: Settings, count: int) -> dict[tuple[int, int], tuple[int, str, Decimal]]:
    """Hold `count` open seats in one transaction; their (version, section, price) after commit."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        hold = conn.execute(
            "INSERT INTO ticketing.holds (event_id, buyer_id, seat_count, expires_at)"
            " SELECT event_id, 424242, %s, now() + interval '10 minutes'"
            " FROM ticketing.seat_inventory WHERE status = 'open' LIMIT 1"
            " RETURNING hold_id, event_id, expires_at",
            (count,),
        ).fetchone()
        assert hold is not None, "no open seat left to hold"
        hold_id, event_id, expires_at = hold
        rows = conn.execute(
            "UPDATE ticketing.seat_inventory i SET status = 'held', hold_id = %s, hold_expires_at = %s"
            " FROM ticketing.seats s JOIN ticketing.sections sec USING (section_id)"
            " WHERE i.seat_id = s.seat_id AND (i.event_id, i.seat_id) IN ("
            "   SELECT event_id, seat_id FROM ticketing.seat_inventory"
            "   WHERE event_id = %s AND status = 'open' ORDER BY seat_id LIMIT %s)"
            " RETURNING i.event_id, i.seat_id, i.version, sec.code, i.price",
            (hold_id, expires_at, event_id, count),
        ).fetchall()
    return {(e, s): (v, code, price) for e, s, v, code, price in rows}


def test_committed_seat_changes_reach_seat_availability_within_10_seconds(
    pipeline: Settings, processor: ProcessorThread
) -> None:
    registry = registry_client(pipeline)
    deserialize = AvroDeserializer(registry)
    consumer = tail_consumer(pipeline, SEAT_AVAILABILITY)
    try:
        expected = hold_seats(pipeline, SEATS)
        committed = time.monotonic()
        assert len(expected) == SEATS
        seen: dict[tuple[int, int], dict] = {}
        while time.monotonic() - committed < 10 and expected.keys() - seen.keys():
            for msg in consumer.consume(500, timeout=0.2):
                assert msg.error() is None, msg.error()
                key = deserialize(msg.key(), SerializationContext(SEAT_AVAILABILITY, MessageField.KEY))
                seat = (key["event_id"], key["seat_id"])
                if seat in expected:
                    seen[seat] = deserialize(
                        msg.value(), SerializationContext(SEAT_AVAILABILITY, MessageField.VALUE))
        missing = expected.keys() - seen.keys()
        assert not missing, f"{len(missing)} of {SEATS} seat changes not published within 10 s"
        for seat, (version, section, price) in expected.items():
            value = seen[seat]
            assert (value["status"], value["source_version"]) == ("HELD", version)
            assert value["section_code"] == section and value["price"] == price
            assert value["hold_expires_at"] is not None and value["snapshot"] is False
    finally:
        consumer.close()
    assert processor.error is None
