"""The sensor that backfills every event after changes were trimmed before they were processed."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.orchestration.availability import OFFSETS_LOST_TAG, availability_stream
from pipelines.orchestration.backfill import events_partitions, offsets_lost_backfill_sensor

pytestmark = pytest.mark.unit


def failed_stream_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> DagsterRun:
    run = DagsterRun(job_name=availability_stream.name, run_id=str(uuid.uuid4()),
                     status=dg.DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(run)
    instance.report_run_failed(run, "boom")
    return run


def test_a_stream_run_that_lost_offsets_backfills_every_event_once() -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(events_partitions.name or "", ["1", "2"])
        failed_stream_run(instance, {})  # an ordinary failure: nothing to backfill
        context = dg.build_sensor_context(instance=instance)
        assert not offsets_lost_backfill_sensor(context).run_requests
        run = failed_stream_run(instance, {OFFSETS_LOST_TAG: "all"})
        result = offsets_lost_backfill_sensor(dg.build_sensor_context(instance=instance))
        assert sorted(r.partition_key for r in result.run_requests) == ["1", "2"]
        assert result.cursor == run.run_id
        again = offsets_lost_backfill_sensor(
            dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert not again.run_requests
