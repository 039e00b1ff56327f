"""Backfills' pure parts (signal, envelopes, coverage) and their Dagster definitions."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import fastavro
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.backfill_events import covered_seat, lsn_int, row_image, snapshot_envelope, snapshot_signal
from pipelines.definitions import resources
from pipelines.orchestration import backfill as orchestration
from pipelines.processor.core import decode_seat_change

pytestmark = pytest.mark.unit


def test_signal_asks_for_an_incremental_snapshot_of_one_events_seats() -> None:
    assert snapshot_signal(42) == {
        "data-collections": ["ticketing.seat_inventory"],
        "type": "incremental",
        "additional-conditions": [{"data-collection": "ticketing.seat_inventory",
                                   "filter": "event_id = 42"}],
    }
    with pytest.raises(ValueError):
        snapshot_signal("1; DROP TABLE x")  # type: ignore[arg-type]


UPDATED = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
NAMES = ["event_id", "seat_id", "price_level_id", "price", "status", "hold_id", "hold_expires_at",
         "order_id", "version", "updated_at"]


def test_row_image_writes_timestamps_as_debezium_zoned_timestamps() -> None:
    row = row_image(NAMES, (7, 1001, 3, Decimal("85.00"), "held", 9, UPDATED, None, 4, UPDATED))
    assert row["hold_expires_at"] == "2026-11-26T12:00:00.123456Z"
    assert row["price"] == Decimal("85.00") and row["version"] == 4


# The registered writer schema of cdc.ticketing.seat_inventory-value, trimmed to what matters.
_ROW = {"type": "record", "name": "Value", "fields": [
    {"name": "event_id", "type": "long"}, {"name": "seat_id", "type": "long"},
    {"name": "price_level_id", "type": "long"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10,
                               "scale": 2}},
    {"name": "status", "type": "string"}, {"name": "hold_id", "type": ["null", "long"]},
    {"name": "hold_expires_at", "type": ["null", "string"]},
    {"name": "order_id", "type": ["null", "long"]}, {"name": "version", "type": "long"},
    {"name": "updated_at", "type": "string"}]}
_SOURCE = {"type": "record", "name": "Source", "fields": [
    {"name": n, "type": t} for n, t in [
        ("version", "string"), ("connector", "string"), ("name", "string"), ("ts_ms", "long"),
        ("snapshot", ["string", "null"]), ("db", "string"), ("sequence", ["null", "string"]),
        ("ts_us", ["null", "long"]), ("ts_ns", ["null", "long"]), ("schema", "string"),
        ("table", "string"), ("txId", ["null", "long"]), ("lsn", ["null", "long"]),
        ("xmin", ["null", "long"]), ("origin", ["null", "string"]),
        ("origin_lsn", ["null", "long"])]]}
ENVELOPE = fastavro.parse_schema({"type": "record", "name": "Envelope", "fields": [
    {"name": "before", "type": ["null", _ROW]}, {"name": "after", "type": ["null", "Value"]},
    {"name": "source", "type": _SOURCE},
    {"name": "transaction", "type": ["null", {"type": "record", "name": "block", "fields": [
        {"name": "id", "type": "string"}]}]},
    {"name": "op", "type": "string"}, {"name": "ts_ms", "type": ["null", "long"]},
    {"name": "ts_us", "type": ["null", "long"]}, {"name": "ts_ns", "type": ["null", "long"]}]})


def test_snapshot_envelope_encodes_and_the_processor_reads_a_snapshot_row() -> None:
    after = row_image(NAMES, (7, 1001, 3, Decimal("85.00"), "open", None, None, None, 4, UPDATED))
    envelope = snapshot_envelope(after, server="cdc", committed_at_ms=1_795_000_000_000)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, ENVELOPE, envelope)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, ENVELOPE, None)
    change = decode_seat_change(decoded)
    assert (change.op, change.snapshot, change.version, change.status) == ("r", True, 4, "OPEN")
    assert change.committed_at_ms == 1_795_000_000_000 and change.lsn is None
    assert decoded["source"]["version"] == "seatflow-backfill"


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        ({"op": "r", "after": {"event_id": 7, "seat_id": 3}, "source": {"snapshot": "incremental"}},
         (3, True)),
        ({"op": "r", "after": {"event_id": 7, "seat_id": 3}, "source": {"snapshot": "true"}},
         (3, False)),
        ({"op": "u", "after": {"event_id": 7, "seat_id": 4}, "source": {"snapshot": "false"}},
         (4, False)),
        ({"op": "d", "before": {"event_id": 7, "seat_id": 5}, "after": None, "source": {}},
         (5, False)),
        ({"op": "u", "after": {"event_id": 8, "seat_id": 4}, "source": {}}, None),
        ({"op": "u", "after": None, "source": {}}, None),
    ],
)
def test_which_records_cover_a_seat_of_the_event(envelope: dict,
                                                  expected: tuple[int, bool] | None) -> None:
    assert covered_seat(envelope, 7) == expected


def test_partitions_follow_the_events_table() -> None:
    assert orchestration.partition_changes(["1", "2", "10"], [2, 3, 10, 11]) == (["3", "11"], ["1"])
    assert orchestration.partition_changes([], []) == ([], [])


def test_drifted_events_are_read_from_the_reconcile_runs_tag() -> None:
    assert orchestration.drifted_events({orchestration.DRIFTED_TAG: "3,12"}) == [3, 12]
    assert orchestration.drifted_events({orchestration.DRIFTED_TAG: ""}) == []
    assert orchestration.drifted_events({}) == []


def test_definitions_resolve_with_the_code_locations_resources() -> None:
    from pipelines.definitions import defs as location

    merged = dg.Definitions.merge(location, orchestration.defs)
    repo = merged.get_repository_def()
    job = repo.get_job("backfill_event")
    assert job.partitions_def == orchestration.events_partitions
    assert {"reconcile_on_sale"} <= {j.name for j in repo.get_all_jobs()}
    assert repo.get_sensor_def("events_partitions_sensor") is not None
    assert repo.get_sensor_def("drift_backfill_sensor") is not None
    assert repo.get_schedule_def("reconcile_on_sale_schedule") is not None


def test_drift_sensor_backfills_each_drifted_event_once() -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(orchestration.events_partitions.name or "", ["1", "2"])
    sensor = orchestration.drift_backfill_sensor
    empty = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(empty, dg.SensorResult) and not empty.run_requests
    job = dg.Definitions.merge(orchestration.defs, dg.Definitions(resources=resources)
                               ).get_job_def("reconcile_on_sale")
    run = instance.create_run_for_job(
        job,
        tags={orchestration.DRIFTED_TAG: "2,9"})
    instance.report_run_failed(run)
    result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests or []] == ["2"]  # 9 has no partition
    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert isinstance(again, dg.SensorResult) and not again.run_requests


def test_an_lsn_reads_as_the_number_debezium_sends() -> None:
    assert lsn_int("0/0") == 0
    assert lsn_int("16/B374D848") == (0x16 << 32) + 0xB374D848
    envelope = snapshot_envelope({"event_id": 1, "seat_id": 2}, server="cdc", committed_at_ms=5,
                                 lsn=lsn_int("1/10"))
    assert envelope["source"]["lsn"] == (1 << 32) + 16


def test_drift_sensor_starts_no_backfill_of_an_event_whose_backfill_still_cancels() -> None:
    # The drift sensor and the stream keeper share one list of still-running statuses.
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(orchestration.events_partitions.name or "", ["2"])
    instance.add_run(DagsterRun(job_name=orchestration.backfill_event_job.name,
                                run_id="c" * 36, status=dg.DagsterRunStatus.CANCELING,
                                tags={"dagster/partition": "2"}))
    job = dg.Definitions.merge(orchestration.defs, dg.Definitions(resources=resources)
                               ).get_job_def("reconcile_on_sale")
    instance.report_run_failed(instance.create_run_for_job(
        job, tags={orchestration.DRIFTED_TAG: "2"}))
    result = orchestration.drift_backfill_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult) and not result.run_requests
