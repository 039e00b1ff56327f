"""The processor on the real stack: dead letters, and exactly-once under SIGKILL."""

from __future__ import annotations

import io
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from decimal import Decimal
from functools import partial
from typing import Any

import fastavro
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from pipelines.avro import AvroDecoder, registry_client
from pipelines.deploy import wait_caught_up
from pipelines.host.seed import seed_host
from pipelines.host.simulate import run_onsale
from pipelines.kafka import clients
from pipelines.kafka.groups import group_committed
from pipelines.kafka.topics import ANOMALIES, DEAD_LETTER, SEAT_AVAILABILITY, cdc_topic
from pipelines.partitioning import event_partition
from pipelines.processor.config import GROUP_ID, ProcessorConfig
from pipelines.reconcile import reconcile_events
from pipelines.settings import PROJECT_ROOT, Settings
from tests.integration.conftest import (
    ProcessorThread,
    end_offsets,
    records_since,
    tail_consumer,
    wait_for,
)

pytestmark = pytest.mark.integration


def last_cdc_record(settings: Settings) -> tuple[bytes, dict[str, Any]]:
    """The newest seat_inventory change event: its bytes and its decoded envelope."""
    topic = cdc_topic(settings, "seat_inventory")
    consumer = clients.consumer(settings, group_id="dlq-probe",
                                **{"isolation.level": "read_committed"})
    # The busiest partition (the topic is partitioned by event).
    partition, end = max(end_offsets(settings, topic).items(), key=lambda pe: pe[1])
    consumer.assign([TopicPartition(topic, partition, max(end - 50, 0))])
    raw = None
    try:
        for msg in consumer.consume(50, timeout=10):
            if msg.error() is None and msg.value() is not None:
                raw = msg.value()
    finally:
        consumer.close()
    assert raw is not None
    decoder = AvroDecoder(registry_client(settings))
    return raw, decoder.decode(raw)


def encode_like(raw: bytes, settings: Settings, envelope: dict[str, Any]) -> bytes:
    """Encode an envelope with the writer schema (and id) of an existing record."""
    schema_id = struct.unpack(">I", raw[1:5])[0]
    schema = AvroDecoder(registry_client(settings)).writer_schema(schema_id)
    buf = io.BytesIO()
    buf.write(raw[:5])
    fastavro.schemaless_writer(buf, schema, envelope)
    return buf.getvalue()


def test_unreadable_records_are_dead_lettered_rule_breakers_published_and_the_run_goes_on(
        pipeline: Settings) -> None:
    settings = pipeline
    raw, good = last_cdc_record(settings)
    after, source = good["after"], good["source"]
    key = {"event_id": after["event_id"], "seat_id": after["seat_id"]}
    ghost = {**key, "seat_id": 987_654_321}
    later = {**source, "lsn": (source.get("lsn") or 0) + 1}
    dead_bytes = {"undecodable": b"this is not avro",
                  "unknown_schema": b"\x00\x7f\xff\xff\xf0" + b"\x02\x04"}
    # Committed as far as the processor can tell (they come from the CDC topic), but breaking
    # rules: published all the same, each with an anomaly.
    breakers = {
        "negative_price": encode_like(raw, settings, {
            **good, "op": "u", "source": later,
            "after": {**after, "price": Decimal("-5.00"), "version": after["version"] + 1000}}),
        "unresolved_reference": encode_like(raw, settings, {
            **good, "op": "c", "source": later, "after": {**after, **ghost, "version": 1}}),
    }
    dead = tail_consumer(settings, DEAD_LETTER)
    anomalies = tail_consumer(settings, ANOMALIES)
    producer = clients.producer(settings)
    # Where Debezium puts the event's changes (PartitionRouting), after them in order.
    partition = event_partition(after["event_id"], settings.partitions)
    for value in [*dead_bytes.values(), *breakers.values()]:
        producer.produce(cdc_topic(settings, "seat_inventory"), value=value, partition=partition)
    producer.flush(10)
    config = ProcessorConfig.of(settings, reference_wait_ms=1000)
    decoder = AvroDecoder(registry_client(settings))

    def collect(consumer: Consumer, into: list[dict], n: int) -> bool:
        into.extend(decoder.decode(m.value()) for m in consumer.consume(10, timeout=0.5)
                    if m.error() is None)
        return len(into) >= n

    with ProcessorThread(settings, config) as running:
        letters: list[dict] = []
        found: list[dict] = []
        wait_for(partial(collect, dead, letters, 2), timeout=60, what="two dead letters")
        wait_for(partial(collect, anomalies, found, 2), timeout=60, what="two anomalies")
        dead.close()
        anomalies.close()
        assert sorted(d["reason"] for d in letters) == ["undecodable", "unknown_schema"]
        assert sorted(d["original_value"] for d in letters) == sorted(dead_bytes.values())
        assert all(d["source_topic"] == cdc_topic(settings, "seat_inventory") for d in letters)
        unknown = next(d for d in letters if d["reason"] == "unknown_schema")
        assert "unknown to the registry" in unknown["error_message"]
        assert sorted((a["rule"], a["seat_id"]) for a in found) == [
            ("negative_price", key["seat_id"]), ("unresolved_reference", ghost["seat_id"])]
        # The run goes on, and the database's next change of the seat is published over the
        # made-up one; the made-up seat is deleted again (as a delete from the CDC topic).
        seat_topic = tail_consumer(settings, SEAT_AVAILABILITY)
        after_that = {**source, "lsn": later["lsn"] + 1}  # a delete after the insert
        gone = encode_like(raw, settings, {**good, "op": "d", "source": after_that,
                                           "before": {**after, **ghost, "version": 1},
                                           "after": None})
        producer.produce(cdc_topic(settings, "seat_inventory"), value=gone, partition=partition)
        producer.flush(10)
        with psycopg.connect(settings.pg_dsn()) as conn:
            conn.execute("UPDATE ticketing.seat_inventory SET price = price + 1"
                         " WHERE event_id = %s AND seat_id = %s",
                         (key["event_id"], key["seat_id"]))
        wait_for(lambda: any(m.error() is None and decoder.decode(m.key()) == key
                             for m in seat_topic.consume(100, timeout=0.5)),
                 timeout=60, what="the good change after the bad ones")
        seat_topic.close()
        wait_caught_up(settings, timeout_s=120)
        results = reconcile_events(settings, {key["event_id"]})
        assert all(r.passed for r in results.values()), [r.report() for r in results.values()]
    assert running.error is None


def versions(settings: Settings) -> dict[tuple[int, int], int]:
    with psycopg.connect(settings.pg_dsn()) as conn:
        rows = conn.execute("SELECT event_id, seat_id, version FROM ticketing.seat_inventory")
        return {(e, s): v for e, s, v in rows}


def cdc_committed(settings: Settings) -> int:
    """How far the processors' group has committed in the seat_inventory CDC topic."""
    return sum(group_committed(settings, GROUP_ID,
                               cdc_topic(settings, "seat_inventory")).values())


def committed_past(settings: Settings, offset: int) -> int | None:
    now = cdc_committed(settings)
    return now if now > offset else None


def start_processor() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli.main", "processor", "run"],
                            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def where_lost(settings: Settings, cdc_start: dict[int, int],
               missing: dict[tuple[int, int], tuple[int, int, list[int] | None]]) -> str:
    """Tell a capture loss from a processor loss: are the missing versions in the CDC topic?"""
    topic = cdc_topic(settings, "seat_inventory")
    wanted = {(seat, v) for seat, (first, last, got) in missing.items()
              for v in range(first + 1, last + 1) if v not in (got or [])}
    decoder = AvroDecoder(registry_client(settings))
    found: dict[tuple[tuple[int, int], int], int] = {}
    for msg in records_since(settings, topic, cdc_start):
        if msg.value() is not None:
            after = decoder.decode(msg.value()).get("after") or {}
            seat = ((after.get("event_id"), after.get("seat_id")), after.get("version"))
            if seat in wanted:
                found[seat] = msg.offset() or 0
    return (f"{len(found)} of {len(wanted)} missing versions are in {topic} (lost by the "
            f"processor), the others never reached it (lost by the capture): "
            f"{sorted(found.items())[:10]}")


def test_sigkill_under_load_loses_nothing_and_duplicates_nothing(pipeline: Settings) -> None:
    settings = pipeline
    proc = start_processor()
    kills = 0
    chance = random.Random(7)
    try:
        wait_caught_up(settings, timeout_s=120)
        before = versions(settings)
        start = end_offsets(settings, SEAT_AVAILABILITY)
        cdc_start = end_offsets(settings, cdc_topic(settings, "seat_inventory"))
        onsale = threading.Thread(target=run_onsale, args=(settings,),
                                  kwargs={"rate": 1500, "duration": 25, "seed": 7}, daemon=True)
        onsale.start()
        committed = sum(cdc_start.values())
        while onsale.is_alive():
            # Kill a processor at work: once it has committed a batch since it started, and
            # then wherever it is (mid-batch, mid-commit: at 1,500 changes/s one is in flight).
            committed = wait_for(partial(committed_past, settings, committed), timeout=60,
                                 what="the restarted processor to commit a batch")
            time.sleep(chance.uniform(0, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            proc = start_processor()
        onsale.join()
        wait_caught_up(settings, timeout_s=180)
    finally:
        proc.terminate()
        proc.wait(30)
    assert kills >= 4
    after = versions(settings)

    published: dict[tuple[int, int], list[int]] = defaultdict(list)
    decoder = AvroDecoder(registry_client(settings))
    for msg in records_since(settings, SEAT_AVAILABILITY, start):
        key, value = decoder.decode(msg.key()), decoder.decode(msg.value())
        published[(key["event_id"], key["seat_id"])].append(value["source_version"])

    changed = {seat for seat, v in after.items() if v != before.get(seat)}
    assert len(changed) > 1000, ("the on-sale changed too few seats to prove anything (sold out? "
                                 "`seatflow seed --reset` gives the events their seats back)")
    duplicated = {seat: vs for seat, vs in published.items() if len(vs) != len(set(vs))}
    assert not duplicated, f"{len(duplicated)} seats published a version twice"
    missing = {seat: (before[seat], after[seat], published.get(seat)) for seat in changed
               if sorted(published.get(seat, [])) != list(range(before[seat] + 1, after[seat] + 1))}
    assert not missing, (f"{len(missing)} seats miss versions, e.g. {list(missing.items())[:3]}; "
                         + where_lost(settings, cdc_start, missing))
    events = {event for event, _ in changed}
    results = reconcile_events(settings, events)
    assert all(r.passed for r in results.values()), [r.report() for r in results.values()]


def test_a_reseeded_host_is_republished_not_taken_for_duplicates(pipeline: Settings) -> None:
    """`seed --reset` empties the tables and seeds again, so versions start again at 1. The
    processor sees the seats deleted first and drops them: the new rows are published, not
    skipped as older versions of the seats it knew."""
    settings = pipeline
    topic = cdc_topic(settings, "seat_inventory")
    with ProcessorThread(settings) as running:
        run_onsale(settings, rate=500, duration=3, seed=11)  # versions above 1, to be reset
        with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
            row = conn.execute("SELECT count(*) FROM ticketing.seat_inventory").fetchone()
        old_rows = row[0] if row else 0
        captured = sum(end_offsets(settings, topic).values())
        seeded = seed_host(settings, events=1, reset=True)
        # A delete is one record (no tombstone: tombstones.on.delete=false), a new row one.
        expected = captured + old_rows + seeded.inventory_rows_added
        wait_for(lambda: sum(end_offsets(settings, topic).values()) >= expected, timeout=300,
                 what=f"the reset captured in {topic}")
        wait_caught_up(settings, timeout_s=300)
        assert running.error is None, f"processor failed: {running.error!r}"
        results = reconcile_events(settings, seeded.events_created)
    assert seeded.events_created and seeded.inventory_rows_added > 0
    assert all(r.passed for r in results.values()), [r.report() for r in results.values()]
