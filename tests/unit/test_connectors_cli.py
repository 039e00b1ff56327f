"""The connectors CLI without a stack: unreachable Connect, usage, and the Dagster definitions."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from pipelines.cli import connectors_cmd
from pipelines.cli.main import app
from pipelines.connect.plan import plan_connectors
from pipelines.definitions import resources
from pipelines.orchestration import connectors as dagster_connectors
from pipelines.orchestration.connectors import plan_markdown
from pipelines.orchestration.resources import SeatflowResource
from pipelines.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 (discard) is closed on the machines we run on: connection refused at once.
    monkeypatch.setattr(connectors_cmd, "get_settings",
                        lambda: Settings(connect_port=9, connect_password="x"))


@pytest.mark.parametrize("args", [["status"], ["plan"], ["restart", "x"],
                                  ["apply", "--dry-run"]])
def test_unreachable_connect_is_one_line_and_exit_3(no_connect: None, args: list[str]) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(app, ["connectors", *args])
    assert result.exit_code == 3, result.output
    assert result.output == "error: Kafka Connect is not reachable at http://127.0.0.1:9\n"
    assert time.monotonic() - started < 10


def test_an_unreadable_file_is_one_message_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("{")
    result = CliRunner().invoke(app, ["connectors", "lint", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    # One message (output.fail wraps it at the terminal's width).
    assert " ".join(result.output.split()).startswith(f"error: {tmp_path}/c.json: not valid JSON")


def test_the_dagster_definitions_resolve() -> None:
    defs = dg.Definitions.merge(dagster_connectors.defs, dg.Definitions(resources=resources))
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {"deploy_connectors", "connector_failure_report"}
    assert repo.get_sensor_def("connector_health_sensor") is not None


def test_plan_markdown_escapes_references_and_masks() -> None:
    plan = plan_connectors({"c": {"database.password": "${env:SEATFLOW_X}", "k": "2"}},
                           {"c": {"database.password": "plain", "k": "1", "name": "c"}})
    text = plan_markdown(plan)
    assert "| | | `database.password` | ******** | $\\{env:SEATFLOW_X} |" in text
    assert "| | | `k` | 1 | 2 |" in text
    assert text.endswith("0 added, 1 changed, 0 removed, 0 unchanged, 0 running without a file")


def test_sensor_skips_with_a_reason_when_connect_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_CONNECT_PASSWORD", "x")
    closed = {"seatflow": SeatflowResource(bind_host="127.0.0.1", connect_port=9)}
    context = dg.build_sensor_context(cursor='{"c": {"restarts": 2}}', resources=closed)
    result = dagster_connectors.connector_health_sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert "not reachable" in str(result.skip_reason)
    assert result.cursor == '{"c": {"restarts": 2}}'
