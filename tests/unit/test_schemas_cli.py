"""`seatflow schemas check` without a registry: exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.avro.schemas import LocalSchema, local_schemas
from pipelines.cli import schemas_cmd
from pipelines.cli.main import app
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 1 on loopback: nothing listens there, so the registry is "down".
    monkeypatch.setattr(schemas_cmd, "get_settings", lambda: Settings(registry_port=1))


def test_offline_check_passes_on_the_repo_schemas() -> None:
    result = runner.invoke(app, ["schemas", "check", "--offline"])
    assert result.exit_code == 0, result.output
    assert f"{len(local_schemas())} schemas ok (offline: not compared with the registry)" in result.output
    assert "seat-availability-value" in result.output


def test_check_says_it_is_offline_when_the_registry_is_down() -> None:
    result = runner.invoke(app, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert "is not reachable: parsing and linting only" in result.output


def test_check_fails_on_a_schema_without_docs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = json.dumps({"type": "record", "name": "X", "namespace": "io.seatflow.test", "doc": "d",
                       "fields": [{"name": "x", "type": "long"}]})
    broken = LocalSchema("x-value", tmp_path / "x-value.avsc", text)
    monkeypatch.setattr(schemas_cmd, "local_schemas", lambda: [broken])
    result = runner.invoke(app, ["schemas", "check", "--offline"])
    assert result.exit_code == 1
    assert "/x: field has no doc" in result.output
    assert "1 of 1 schemas break: x-value" in result.output


def test_check_refuses_an_unknown_subject() -> None:
    result = runner.invoke(app, ["schemas", "check", "--offline", "no-such-value"])
    assert result.exit_code == 1
    assert "no schema in schemas/ for no-such-value" in result.output
