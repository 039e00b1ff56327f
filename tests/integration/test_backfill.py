"""Backfills and reconciliation on the real stack: drift found and repaired, both ways, with
changes streaming in; an unknown event refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from pipelines.avro import AvroEncoder, registry_client
from pipelines.avro.schemas import load_schema
from pipelines.backfill import BackfillError, backfill_event
from pipelines.connect import ConnectClient
from pipelines.deploy import wait_caught_up
from pipelines.host.simulate import run_onsale
from pipelines.kafka import clients
from pipelines.kafka.topics import EVENT_AVAILABILITY, SEAT_AVAILABILITY, SECTION_AVAILABILITY
from pipelines.partitioning import event_partition
from pipelines.processor.runner import run_processor
from pipelines.reconcile import Reconciliation, latest_values, reconcile_events
from pipelines.settings import Settings
from tests.integration.conftest import ProcessorThread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def event_id(pipeline: Settings) -> int:
    with psycopg.connect(pipeline.pg_dsn()) as conn:
        row = conn.execute("SELECT min(event_id) FROM ticketing.events"
                           " WHERE status = 'on_sale'").fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


@contextmanager
def stream(settings: Settings) -> Iterator[ProcessorThread]:
    """A processor caught up on the CDC topics, then running in a thread."""
    run_processor(settings, should_stop=lambda: False, until_end=True)
    with ProcessorThread(settings) as running:
        yield running
    assert running.error is None, f"processor failed: {running.error!r}"


def reconcile(settings: Settings, event_id: int, attempts: int = 3) -> Reconciliation:
    return reconcile_events(settings, [event_id], attempts=attempts, wait_s=1)[event_id]


def encoder(settings: Settings, topic: str, part: str) -> AvroEncoder:
    registry = registry_client(settings)
    return AvroEncoder(registry, f"{topic}-{part}", load_schema(f"{topic}-{part}").text)


def inject_drift(settings: Settings, event_id: int, *, seats: int = 5) -> tuple[set[int], set[int]]:
    """Wrong statuses (same version) for some seats, tombstones for others, and wrong section
    and event counts, written into the availability topics behind the processor's back."""
    def ours(key: dict) -> bool:
        return key["event_id"] == event_id

    latest = {k: v for k, v in latest_values(settings, SEAT_AVAILABILITY, ours).items() if v}
    chosen = sorted(latest)[: 2 * seats]
    wrong, missing = chosen[:seats], chosen[seats:]
    producer = clients.producer(settings)
    key, value = encoder(settings, SEAT_AVAILABILITY, "key"), encoder(settings, SEAT_AVAILABILITY, "value")
    # In the event's partition, as the processor writes it: a writer behind its back that
    # used another partition would not be drift of the event but a second copy of its seats.
    partition = event_partition(event_id, settings.partitions)
    for k in wrong:
        v = latest[k]
        producer.produce(SEAT_AVAILABILITY, key=key.encode({"event_id": k[0], "seat_id": k[1]}),
                         value=value.encode({**v, "status": "OPEN" if v["status"] == "SOLD" else "SOLD",
                                             "hold_expires_at": None}), partition=partition)
    for k in missing:
        producer.produce(SEAT_AVAILABILITY, key=key.encode({"event_id": k[0], "seat_id": k[1]}),
                         value=None, partition=partition)
    section_key, section_value = next((k, v) for k, v in latest_values(
        settings, SECTION_AVAILABILITY, ours).items() if v)
    producer.produce(
        SECTION_AVAILABILITY,
        key=encoder(settings, SECTION_AVAILABILITY, "key").encode(
            dict(zip(("event_id", "section_code", "price_level_id"), section_key, strict=True))),
        value=encoder(settings, SECTION_AVAILABILITY, "value").encode(
            {**section_value, "open": section_value["open"] + 1000}), partition=partition)
    totals = latest_values(settings, EVENT_AVAILABILITY, ours)[(event_id,)]
    assert totals is not None
    producer.produce(EVENT_AVAILABILITY,
                     key=encoder(settings, EVENT_AVAILABILITY, "key").encode({"event_id": event_id}),
                     value=encoder(settings, EVENT_AVAILABILITY, "value").encode(
                         {**totals, "sold": totals["sold"] + 7}), partition=partition)
    assert producer.flush(10) == 0
    return {s for _, s in wrong}, {s for _, s in missing}


def assert_drift_found(result: Reconciliation, wrong: set[int], missing: set[int]) -> None:
    kinds = {d.seat_id: d.kind for d in result.seat_differences}
    assert {s for s, k in kinds.items() if k == "wrong"} == wrong, result.report()
    assert {s for s, k in kinds.items() if k == "missing"} == missing, result.report()
    whats = {d.what for d in result.count_differences}
    assert "event" in whats and any(w.startswith("section ") for w in whats), result.report()


def seat_versions(settings: Settings, event_id: int) -> dict[int, tuple[str, int]]:
    with psycopg.connect(settings.pg_dsn()) as conn:
        rows = conn.execute("SELECT seat_id, status, version FROM ticketing.seat_inventory"
                            " WHERE event_id = %s", (event_id,)).fetchall()
    return {seat: (status, version) for seat, status, version in rows}


def test_a_backfill_of_an_event_that_does_not_exist_fails_clearly(pipeline: Settings) -> None:
    with pytest.raises(BackfillError, match="event 987654 does not exist"):
        backfill_event(pipeline, 987654, method="database")


def test_drift_is_repaired_from_the_database_with_connect_paused_after_a_restart(
        pipeline: Settings, event_id: int) -> None:
    # Before the module's processor starts: a new processor rebuilds its state from the drift.
    settings = pipeline
    # The event's availability is published first (on a fresh stack nothing has been yet).
    run_processor(settings, should_stop=lambda: False, until_end=True)
    wrong, missing = inject_drift(settings, event_id)
    client = ConnectClient.from_settings(settings)
    client.pause(settings.connector_name)
    try:
        client.wait_state(settings.connector_name, "PAUSED")
        with pytest.raises(BackfillError, match="not running"):
            backfill_event(settings, event_id, method="debezium")
        with stream(settings):
            assert_drift_found(reconcile(settings, event_id, attempts=2), wrong, missing)
            report = backfill_event(settings, event_id, method="database", timeout_s=120)
            assert report.rows == report.seats
            result = reconcile(settings, event_id)
    finally:
        client.resume(settings.connector_name)
        client.wait_running(settings.connector_name)
    assert result.passed, result.report()


@pytest.mark.parametrize("method", ["debezium", "database"])
def test_a_backfill_during_an_onsale_ends_in_agreement(processor: ProcessorThread, pipeline: Settings,
                                                         event_id: int, method: str) -> None:
    settings = pipeline
    outcome: list[object] = []

    def sell() -> None:
        try:
            outcome.append(run_onsale(settings, rate=800, duration=14, seed=11,
                                      events=[event_id], hold_ttl=5))
        except BaseException as e:
            outcome.append(e)

    onsale = threading.Thread(target=sell, daemon=True)
    onsale.start()
    time.sleep(2)  # buyers are at it
    report = backfill_event(settings, event_id, method=method, timeout_s=120)  # type: ignore[arg-type]
    assert report.seats > 0 and report.rows + report.streamed >= report.seats
    assert report.streamed > 0, f"nothing changed during the backfill: {report}"
    onsale.join(60)
    assert outcome and not isinstance(outcome[0], BaseException), outcome
    wait_caught_up(settings, timeout_s=120)
    result = reconcile(settings, event_id)
    assert result.passed, result.report()


def test_drift_is_found_and_repaired_by_debezium_backfills_idempotently(
        processor: ProcessorThread, pipeline: Settings, event_id: int) -> None:
    settings = pipeline
    wait_caught_up(settings, timeout_s=120)
    wrong, missing = inject_drift(settings, event_id)
    assert_drift_found(reconcile(settings, event_id, attempts=2), wrong, missing)
    first = backfill_event(settings, event_id, method="debezium", timeout_s=120)
    assert first.rows == first.seats  # nothing streamed meanwhile: every row snapshotted
    assert reconcile(settings, event_id).passed
    versions = seat_versions(settings, event_id)
    second = backfill_event(settings, event_id, method="debezium", timeout_s=120)
    assert second.rows == second.seats
    # The database did not change, and the topics equal it seat by seat again.
    assert seat_versions(settings, event_id) == versions
    assert reconcile(settings, event_id).passed
