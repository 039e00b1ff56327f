"""Lint rules on bad connector files, one rule at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.connect import CONNECTORS_DIR, load_connectors
from pipelines.connect.lint import LintIssue, TicketingHost, lint_connectors
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

BASE = json.loads((CONNECTORS_DIR / "ticketing-host.json").read_text())
# The local stack's ticketing host, as its worker's SEATFLOW_PG_HOST / _PORT name it.
TICKETING = TicketingHost("127.0.0.1", 54329, TicketingHost.variables("127.0.0.1", 54329))


def lint(folder: Path, env: str = "local") -> list[LintIssue]:
    return lint_connectors(load_connectors(folder, env=env), ticketing=TICKETING)


def write(folder: Path, name: str, config: dict[str, str | None], *, file: str | None = None) -> Path:
    """A copy of the shipped connector under `name`, with `config` set (None removes a key)."""
    merged = {**BASE["config"], "slot.name": f"slot_{name.replace('-', '_')}",
              "publication.name": f"pub_{name.replace('-', '_')}", **config}
    doc = {"name": name, "config": {k: v for k, v in merged.items() if v is not None}}
    path = folder / (file or f"{name}.json")
    path.write_text(json.dumps(doc))
    return path


def findings(folder: Path, env: str = "local") -> list[tuple[str, str, str]]:
    return [(i.rule, i.path.name, i.key) for i in lint(folder, env)]


def test_shipped_files_lint_clean_in_every_env() -> None:
    for env in ["local", *(p.name for p in (CONNECTORS_DIR / "overlays").iterdir() if p.is_dir())]:
        assert lint(CONNECTORS_DIR, env) == [], env
    # Elsewhere too: the shipped files reach the ticketing host through the worker's variables.
    elsewhere = TicketingHost.of(Settings(pg_host="ticketing-db.internal", pg_port=5432))
    for env in ("local", "prod"):
        assert lint_connectors(load_connectors(CONNECTORS_DIR, env=env), ticketing=elsewhere) == []


def test_a_good_copy_lints_clean(tmp_path: Path) -> None:
    write(tmp_path, "good", {})
    assert findings(tmp_path) == []


@pytest.mark.parametrize(("config", "expected"), [
    ({"database.password": "hunter2"}, ("plain-secret", "database.password")),
    ({"database.password": "${env:SEATFLOW_X}tail"}, ("plain-secret", "database.password")),
    ({"database.sslpassword": "x"}, ("plain-secret", "database.sslpassword")),
    ({"database.password": "${env:HOME}"}, ("provider", "database.password")),
    ({"database.password": "${vault:secret/db:pw}"}, ("provider", "database.password")),
    ({"database.password": "${file:secrets.properties:pw}"}, ("provider", "database.password")),
    ({"errors.tolerance": "all"}, ("errors-tolerance", "errors.tolerance")),
    ({"heartbeat.interval.ms": None}, ("heartbeat", "heartbeat.interval.ms")),
    ({"heartbeat.interval.ms": "0"}, ("heartbeat", "heartbeat.interval.ms")),
    ({"topic.prefix": ""}, ("topic-prefix", "topic.prefix")),
    ({"exactly.once.support": None}, ("exactly-once", "exactly.once.support")),
    ({"exactly.once.support": "requested"}, ("exactly-once", "exactly.once.support")),
    ({"slot.name": None}, ("unique-slot", "slot.name")),
    ({"publication.name": None}, ("unique-publication", "publication.name")),
])
def test_each_rule_names_file_and_key(tmp_path: Path, config: dict[str, str | None],
                                      expected: tuple[str, str]) -> None:
    write(tmp_path, "bad", config)
    assert findings(tmp_path) == [(expected[0], "bad.json", expected[1])]


def test_errors_tolerance_all_is_fine_on_a_sink(tmp_path: Path) -> None:
    path = tmp_path / "sink.json"
    path.write_text(json.dumps({"name": "sink", "config": {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector", "errors.tolerance": "all"}}))
    assert findings(tmp_path) == []


@pytest.mark.parametrize("key", ["slot.name", "publication.name"])
def test_shared_slot_or_publication_is_named_in_both_files(tmp_path: Path, key: str) -> None:
    write(tmp_path, "one", {key: "shared"})
    write(tmp_path, "two", {key: "shared"})
    rule = "unique-slot" if key == "slot.name" else "unique-publication"
    assert findings(tmp_path) == [(rule, "one.json", key), (rule, "two.json", key)]


def test_name_must_match_the_file(tmp_path: Path) -> None:
    write(tmp_path, "real-name", {}, file="other.json")
    assert findings(tmp_path) == [("file-name", "other.json", "name")]


def test_a_finding_from_an_overlay_names_the_overlay(tmp_path: Path) -> None:
    write(tmp_path, "conn", {})
    (tmp_path / "overlays" / "prod").mkdir(parents=True)
    (tmp_path / "overlays" / "prod" / "conn.json").write_text(
        json.dumps({"config": {"database.password": "plain"}}))
    [issue] = lint(tmp_path, env="prod")
    assert issue.path == tmp_path / "overlays" / "prod" / "conn.json"
    assert findings(tmp_path, env="local") == []


def test_cli_lint_prints_file_key_and_rule_and_exits_1(tmp_path: Path) -> None:
    write(tmp_path, "bad", {"errors.tolerance": "all"})
    result = CliRunner().invoke(app, ["connectors", "lint", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"lint {tmp_path}/bad.json: errors.tolerance: 'all' on a source connector drops changes "
        "silently; use 'none' [errors-tolerance]\n")


def test_cli_lint_json(tmp_path: Path) -> None:
    write(tmp_path, "bad", {"heartbeat.interval.ms": None})
    result = CliRunner().invoke(app, ["connectors", "lint", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 1
    assert [(f["rule"], f["key"]) for f in json.loads(result.stdout)] == [
        ("heartbeat", "heartbeat.interval.ms")]


def test_cli_lint_clean(tmp_path: Path) -> None:
    write(tmp_path, "good", {})
    result = CliRunner().invoke(app, ["connectors", "lint", "--dir", str(tmp_path)])
    assert (result.exit_code, result.output) == (0, "1 connector file(s): no findings\n")
