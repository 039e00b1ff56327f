"""The sensor that keeps one availability_stream run alive per processor slot."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.orchestration.availability import (
    SLOT_TAG,
    availability_stream,
    availability_stream_keeper,
    next_start_in,
)

pytestmark = pytest.mark.unit


def evaluate(instance: dg.DagsterInstance) -> dg.SensorResult:
    result = availability_stream_keeper(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult)
    return result


def run_of(slot: int) -> DagsterRun:
    return DagsterRun(job_name=availability_stream.name, run_id=str(uuid.uuid4()),
                      status=dg.DagsterRunStatus.STARTED, tags={SLOT_TAG: str(slot)})


def test_starts_a_run_per_slot_that_has_none_alive_and_never_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_PROCESSOR_INSTANCES", "2")
    with dg.instance_for_test() as instance:
        requests = evaluate(instance).run_requests or []
        assert sorted(r.tags[SLOT_TAG] for r in requests) == ["0", "1"]
        assert [r.run_config["ops"]["stream_availability"]["config"]["slot"]
                for r in requests] == [0, 1]
        instance.add_run(run_of(1))
        [only] = evaluate(instance).run_requests or []
        assert only.tags[SLOT_TAG] == "0"
        instance.add_run(run_of(0))
        result = evaluate(instance)
        assert not result.run_requests and "is alive" in str(result.skip_reason)


def test_a_failed_run_restarts_at_once_and_failures_in_a_row_back_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_PROCESSOR_INSTANCES", "1")
    with dg.instance_for_test() as instance:
        for attempt in range(1, 3):
            run = run_of(0)
            instance.add_run(run)
            instance.report_run_failed(run, f"boom {attempt}")
            result = evaluate(instance)
            if attempt == 1:
                assert len(result.run_requests or []) == 1, result.skip_reason
            else:
                assert not result.run_requests
                assert "2 failed run(s) in a row; next try in" in str(result.skip_reason)


@pytest.mark.parametrize(
    ("recent", "now", "expected"),
    [
        ([], 100.0, (0, 0.0)),
        ([(False, 80.0, 90.0), (True, 40.0, 50.0)], 100.0, (0, 0.0)),  # the newest succeeded
        ([(True, 80.0, 90.0)], 100.0, (1, 0.0)),  # the first failure restarts at once
        ([(True, 85.0, 90.0), (True, 45.0, 50.0), (False, 0.0, 10.0)], 100.0, (2, 0.0)),
        ([(True, 85.0, 90.0), (True, 45.0, 50.0), (True, 40.0, 42.0)], 100.0, (3, 20.0)),
        ([(True, 0.0, 0.0)] * 12, 100.0, (12, 500.0)),  # capped at 600 s
        ([(True, 0.0, 0.0)] * 12, 700.0, (12, 0.0)),
        ([(True, 0.0, None)], 100.0, (1, 0.0)),  # end time unknown: try now
        # A run that was healthy for hours before it failed: the failures before it are old news.
        ([(True, 85.0, 90.0), (True, -9000.0, 80.0), (True, 0.0, 0.0), (True, 0.0, 0.0)], 100.0,
         (2, 0.0)),
    ],
)
def test_backoff_counts_failures_in_a_row_since_the_last_healthy_run(
    recent: list[tuple[bool, float | None, float | None]], now: float,
    expected: tuple[int, float],
) -> None:
    assert next_start_in(recent, now) == expected
