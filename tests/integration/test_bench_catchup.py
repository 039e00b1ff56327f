"""`seatflow bench catchup` on the real stack: a backlog committed with the connector paused is
drained, every change published, the availability equal to the database, and the connector
running again. (Its figures are a report, not a test: speed is never asserted here.)"""

from __future__ import annotations

import psycopg
import pytest

from pipelines.bench.catchup import bench_catch_up
from pipelines.connect import ConnectClient
from pipelines.connect.files import load_connectors
from pipelines.reconcile import reconcile_events
from pipelines.settings import Settings

pytestmark = pytest.mark.integration


def test_a_paused_connectors_backlog_is_drained_in_full_and_the_connector_runs_again(
        pipeline: Settings) -> None:
    report = bench_catch_up(pipeline, backlog_s=5, timeout_s=300)

    assert report.changes_committed > 0
    assert report.processor_lag_end == 0, "the processor did not read the whole CDC topic"
    # Every record captured was published: Debezium and the processor both count each seat
    # change once, plus a few transaction markers each.
    assert report.capture.per_s is not None and report.processing.per_s is not None
    assert abs(report.published_records - report.cdc_records) < 0.01 * report.cdc_records + 100
    assert report.curve and report.curve[0][0] > 0

    client = ConnectClient.from_settings(pipeline)
    for connector in load_connectors():
        status = client.status(connector.name)
        assert status is not None and status["connector"]["state"] == "RUNNING", status

    with psycopg.connect(pipeline.pg_dsn()) as conn:
        events = [r[0] for r in conn.execute("SELECT event_id FROM ticketing.events")]
    results = reconcile_events(pipeline, events, attempts=3, wait_s=1)
    failed = [r.report() for r in results.values() if not r.passed]
    assert not failed, "\n".join(failed)
