"""The sensor that keeps exactly one availability_stream run alive."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.orchestration.availability import (
    availability_stream,
    availability_stream_keeper,
    next_start_in,
)

pytestmark = pytest.mark.unit


def evaluate(instance: dg.DagsterInstance) -> dg.SensorResult:
    result = availability_stream_keeper(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult)
    return result


def test_starts_a_run_when_none_is_alive_and_never_a_second() -> None:
    with dg.instance_for_test() as instance:
        assert len(evaluate(instance).run_requests or []) == 1
        instance.add_run(DagsterRun(job_name=availability_stream.name, run_id=str(uuid.uuid4()),
                                    status=dg.DagsterRunStatus.STARTED))
        result = evaluate(instance)
        assert not result.run_requests and "is alive" in str(result.skip_reason)


def test_a_run_that_just_failed_waits_for_its_backoff() -> None:
    with dg.instance_for_test() as instance:
        run = DagsterRun(job_name=availability_stream.name, run_id=str(uuid.uuid4()),
                         status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        instance.report_run_failed(run, "boom")
        result = evaluate(instance)
        assert not result.run_requests
        assert "1 failed run(s) in a row; next try in" in str(result.skip_reason)
        run2 = DagsterRun(job_name=availability_stream.name, run_id=str(uuid.uuid4()),
                          status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run2)
        instance.report_run_failed(run2, "boom again")
        result = evaluate(instance)
        assert not result.run_requests
        assert "2 failed run(s) in a row; next try in" in str(result.skip_reason)


@pytest.mark.parametrize(
    ("recent", "now", "expected"),
    [
        ([], 100.0, (0, 0.0)),
        ([(False, 90.0), (True, 50.0)], 100.0, (0, 0.0)),  # the newest run succeeded
        ([(True, 90.0)], 100.0, (1, 20.0)),
        ([(True, 90.0), (True, 50.0), (False, 10.0)], 100.0, (2, 50.0)),
        ([(True, 0.0)] * 9, 100.0, (9, 500.0)),  # capped at 600 s
        ([(True, 0.0)] * 9, 700.0, (9, 0.0)),
        ([(True, None)], 100.0, (1, 0.0)),  # end time unknown: try now
    ],
)
def test_backoff_counts_failures_in_a_row_and_is_bounded(
    recent: list[tuple[bool, float | None]], now: float, expected: tuple[int, float]
) -> None:
    assert next_start_in(recent, now) == expected
