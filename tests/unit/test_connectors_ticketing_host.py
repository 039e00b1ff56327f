"""The ticketing-host rule: a connector captures from the configured ticketing host only, and one
aimed elsewhere is refused before any request reaches Connect (whose validation would log in to
the host it names, with the credentials the worker resolves)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.cli import connectors_cmd
from pipelines.cli.main import app
from pipelines.connect import (
    ConnectClient,
    ConnectorRefusedError,
    TicketingHost,
    apply_connector,
    deploy_connectors,
    load_connectors,
)
from pipelines.connect.lint import RULES, lint_connectors
from pipelines.connect.ops import validate_config
from pipelines.settings import Settings
from pipelines.stack.configs import connect_environment
from tests.unit.test_connectors_lint import TICKETING, write

pytestmark = pytest.mark.unit


def issues(folder: Path, env: str = "local",
           ticketing: TicketingHost = TICKETING) -> list[tuple[str, str, str]]:
    return [(i.key, i.connector, i.message)
            for i in lint_connectors(load_connectors(folder, env=env), ticketing=ticketing)
            if i.rule == "ticketing-host"]


def test_the_rule_is_listed() -> None:
    assert "ticketing-host" in RULES


@pytest.mark.parametrize("config", [
    {},  # the shipped references: ${env:SEATFLOW_PG_HOST}, ${env:SEATFLOW_PG_PORT}
    {"database.hostname": "127.0.0.1", "database.port": "54329"},
    {"database.hostname": " 127.0.0.1 "},
])
def test_the_ticketing_host_passes(tmp_path: Path, config: dict[str, str]) -> None:
    write(tmp_path, "good", config)
    assert issues(tmp_path) == []


@pytest.mark.parametrize(("config", "key", "message"), [
    ({"database.hostname": "db.elsewhere.example"}, "database.hostname",
     "connector bad: database.hostname is 'db.elsewhere.example'; expected the ticketing "
     "host's '127.0.0.1' (SEATFLOW_PG_HOST, else SEATFLOW_BIND_HOST, and SEATFLOW_PG_PORT)"),
    ({"database.hostname": "${env:SEATFLOW_PG_HOST}.elsewhere.example"}, "database.hostname",
     "connector bad: database.hostname is '${env:SEATFLOW_PG_HOST}.elsewhere.example', "
     "resolving to '127.0.0.1.elsewhere.example'; expected the ticketing host's '127.0.0.1' "
     "(SEATFLOW_PG_HOST, else SEATFLOW_BIND_HOST, and SEATFLOW_PG_PORT)"),
    ({"database.hostname": "${env:SEATFLOW_REPLICA_HOST}"}, "database.hostname",
     "connector bad: database.hostname is '${env:SEATFLOW_REPLICA_HOST}', which cannot be "
     "resolved here (only ${env:SEATFLOW_PG_HOST}, ${env:SEATFLOW_PG_PORT} or a plain value); "
     "expected the ticketing host's '127.0.0.1'"),
    ({"database.hostname": None}, "database.hostname",
     "connector bad: database.hostname is not set; expected the ticketing host '127.0.0.1'"),
    ({"database.port": "5432"}, "database.port",
     "connector bad: database.port is '5432'; expected the ticketing host's '54329' "
     "(SEATFLOW_PG_HOST, else SEATFLOW_BIND_HOST, and SEATFLOW_PG_PORT)"),
    ({"database.port": None}, "database.port",
     "connector bad: database.port is not set (Debezium's default 5432); expected the "
     "ticketing host's '54329' (SEATFLOW_PG_HOST, else SEATFLOW_BIND_HOST, and "
     "SEATFLOW_PG_PORT)"),
    ({"database.port": "${env:SEATFLOW_PG_HOST}"}, "database.port",
     "connector bad: database.port is '${env:SEATFLOW_PG_HOST}', resolving to '127.0.0.1'; "
     "expected the ticketing host's '54329' (SEATFLOW_PG_HOST, else SEATFLOW_BIND_HOST, and "
     "SEATFLOW_PG_PORT)"),
])
def test_another_host_or_port_names_connector_key_value_and_expected(
        tmp_path: Path, config: dict[str, str | None], key: str, message: str) -> None:
    write(tmp_path, "bad", config)
    assert issues(tmp_path) == [(key, "bad", message)]


def test_a_file_reference_cannot_be_checked_so_it_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "bad", {"database.hostname": "${file:/etc/kafka-connect/db.properties:host}"})
    [(key, _, message)] = issues(tmp_path)
    assert key == "database.hostname" and "cannot be resolved here" in message


def test_an_overlay_aiming_elsewhere_is_named(tmp_path: Path) -> None:
    write(tmp_path, "conn", {})
    (tmp_path / "overlays" / "prod").mkdir(parents=True)
    (tmp_path / "overlays" / "prod" / "conn.json").write_text(
        json.dumps({"config": {"database.hostname": "10.1.2.3"}}))
    [issue] = lint_connectors(load_connectors(tmp_path, env="prod"), ticketing=TICKETING)
    assert (issue.rule, issue.path, issue.key) == (
        "ticketing-host", tmp_path / "overlays" / "prod" / "conn.json", "database.hostname")
    assert issues(tmp_path, env="local") == []


def test_a_connector_without_a_database_is_not_concerned(tmp_path: Path) -> None:
    (tmp_path / "sink.json").write_text(json.dumps({"name": "sink", "config": {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector"}}))
    assert issues(tmp_path) == []


def test_the_expected_host_is_the_settings_ticketing_host(tmp_path: Path) -> None:
    elsewhere = TicketingHost.of(Settings(bind_host="127.0.0.1", pg_host="db.internal",
                                          pg_port=5432))
    assert (elsewhere.host, elsewhere.port) == ("db.internal", 5432)
    write(tmp_path, "conn", {"database.hostname": "127.0.0.1", "database.port": "54329"})
    assert [key for key, _, _ in issues(tmp_path, ticketing=elsewhere)] == [
        "database.hostname", "database.port"]
    # The worker's variables name the same host: the shipped references resolve to it.
    write(tmp_path, "conn", {})
    assert issues(tmp_path, ticketing=elsewhere) == []


def test_the_local_worker_gets_the_variables_the_rule_resolves() -> None:
    settings = Settings(bind_host="127.0.0.1", pg_host=None, pg_port=54329,
                        pg_debezium_password="x", registry_writer_password="w")
    env = connect_environment(settings)
    assert TicketingHost.of(settings).env.items() <= env.items()
    assert (env["SEATFLOW_PG_HOST"], env["SEATFLOW_PG_PORT"]) == ("127.0.0.1", "54329")


class NoRequests(ConnectClient):
    """A client that fails the test on any request."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", retries=0)

    def _call(self, method: str, path: str, body: Any = None,
              ok: tuple[int, ...] = (200,)) -> Any:
        raise AssertionError(f"a request reached Connect: {method} {path}")


def test_apply_connector_refuses_before_any_request(tmp_path: Path) -> None:
    write(tmp_path, "bad", {"database.hostname": "db.elsewhere.example"})
    [file] = load_connectors(tmp_path)
    with pytest.raises(ConnectorRefusedError, match=r"bad: refused, nothing applied .*"
                                                    r"database\.hostname is 'db\.elsewhere"):
        apply_connector(NoRequests(), file, ticketing=TICKETING)


def test_deploy_stops_at_lint_before_any_request(tmp_path: Path) -> None:
    write(tmp_path, "bad", {"database.port": "5432"})
    report = deploy_connectors(NoRequests(), load_connectors(tmp_path), ticketing=TICKETING)
    assert (report.stage, report.ok, report.applied) == ("lint", False, {})
    assert [(i.rule, i.key) for i in report.lint] == [("ticketing-host", "database.port")]


def test_validate_refuses_another_host_without_asking_connect() -> None:
    config = {"connector.class": "io.debezium.connector.postgresql.PostgresConnector",
              "database.hostname": "db.elsewhere.example", "database.port": "54329"}
    [error] = validate_config(NoRequests(), "bad", config, ticketing=TICKETING)
    assert (error.connector, error.key, error.value) == (
        "bad", "database.hostname", "db.elsewhere.example")
    assert "expected the ticketing host's '127.0.0.1'" in error.errors[0]


def test_cli_apply_refuses_without_reaching_connect(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Connect on a closed port: reaching it would exit 3 ("not reachable"), not 1.
    monkeypatch.setattr(connectors_cmd, "get_settings", lambda: Settings(
        bind_host="127.0.0.1", pg_host=None, pg_port=54329, connect_port=9,
        connect_password="x"))
    write(tmp_path, "bad", {"database.hostname": "db.elsewhere.example"})
    for command in ("apply", "validate"):
        result = CliRunner().invoke(app, ["connectors", command, "--dir", str(tmp_path)])
        assert result.exit_code == 1, (command, result.output)
        assert "database.hostname" in result.output and "db.elsewhere.example" in result.output
        assert "not reachable" not in result.output
