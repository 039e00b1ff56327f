"""The Dagster asset checks of the availability topics, run in process against the stack."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.processor.runner import run_processor
from pipelines.settings import Settings

pytestmark = pytest.mark.integration


def test_checks_pass_once_the_processor_has_caught_up(
    pipeline: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEATFLOW_PG_APP_PASSWORD", pipeline.pg_app_password.get_secret_value())
    run_processor(pipeline, should_stop=lambda: False, until_end=True)
    job = defs.resolve_job_def("availability_checks")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"availability_freshness", "dead_letter_rate", "anomaly_rate",
                                "availability_reconciliation"}
    failed = {name: e.metadata for name, e in evaluations.items() if not e.passed}
    assert not failed, failed
    assert evaluations["availability_reconciliation"].metadata["differences"].value == 0


def test_dagsters_catch_up_run_processes_as_the_processor_principal(
    pipeline: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dagster logs in as admin; the processor runs it launches switch to the processor's own
    # principal, whose ACLs must carry a whole run (group, transactional id, topics).
    assert pipeline.kafka_username == "admin"
    assert pipeline.as_principal("processor").kafka_username == "processor"
    monkeypatch.setenv("SEATFLOW_PG_APP_PASSWORD", pipeline.pg_app_password.get_secret_value())
    job = defs.resolve_job_def("availability_catchup")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
