"""`seatflow connectors ...` and the Dagster job and sensor against the real Connect of the stack.

Everything that breaks, resets or deletes works on a throwaway connector with its own table,
publication, slot and password file; `ticketing-host` is only read (and must stay unchanged).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner, Result

from pipelines.cli.main import app
from pipelines.connect import CONNECTORS_DIR, ConnectClient, load_connector_file
from pipelines.definitions import resources
from pipelines.kafka import clients
from pipelines.orchestration import connectors as dagster_connectors
from pipelines.settings import Settings
from pipelines.stack.layout import StackLayout
from pipelines.stack.postgres import superuser_dsn
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@dataclass(frozen=True)
class Scratch:
    """A throwaway connector on a one-row table, and where its file and password live."""

    run: str
    folder: Path
    secrets: Path

    @property
    def schema(self) -> str:
        return f"seatflow_ct_{self.run}"

    @property
    def name(self) -> str:
        return f"seatflow-ct-{self.run}"

    @property
    def prefix(self) -> str:
        """Under the CDC topics' prefix, whose topics the connect principal may create and
        write (pipelines/kafka/acls.py)."""
        return f"{Settings.model_fields['topic_prefix'].default}.{self.schema}"

    @property
    def file(self) -> Path:
        return self.folder / f"{self.name}.json"

    @property
    def password_file(self) -> Path:
        return self.secrets / f"{self.name}.properties"

    def config(self) -> dict[str, str]:
        base = load_connector_file(CONNECTORS_DIR / "ticketing-host.json").config
        converters = {k: v for k, v in base.items() if k.startswith(("key.", "value."))}
        return {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "plugin.name": "pgoutput",
            "database.hostname": "${env:SEATFLOW_PG_HOST}",
            "database.port": "${env:SEATFLOW_PG_PORT}",
            "database.dbname": "${env:SEATFLOW_PG_DATABASE}",
            "database.user": "${env:SEATFLOW_DEBEZIUM_USER}",
            # A file reference, so a test can make it point at a wrong value under the task.
            "database.password": f"${{file:{self.password_file}:password}}",
            "topic.prefix": self.prefix,
            # Connect creates the topics (the broker creates none by itself).
            "topic.creation.default.partitions": "-1",
            "topic.creation.default.replication.factor": "-1",
            "slot.name": self.schema,
            "publication.name": self.schema,
            "publication.autocreate.mode": "disabled",
            "table.include.list": f"{self.schema}.probe",
            "snapshot.mode": "initial",
            "heartbeat.interval.ms": "10000",
            "exactly.once.support": "required",
            "transaction.boundary": "poll",
            # Fail at once on a connection error instead of retrying: the tests watch failures.
            "errors.max.retries": "0",
            "extended.headers.enabled": "false",
            **converters,
        }

    def write(self, **changes: str) -> dict[str, str]:
        config = {**self.config(), **{k.replace("_", "."): v for k, v in changes.items()}}
        self.file.write_text(json.dumps({"name": self.name, "config": config}, indent=2))
        return config

    def set_password(self, password: str) -> None:
        self.password_file.write_text(f"password={password}\n")
        self.password_file.chmod(0o600)


def superuser(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(superuser_dsn(settings, settings.pg_database), autocommit=True,
                           connect_timeout=10)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, ["connectors", *args])


def client(settings: Settings) -> ConnectClient:
    return ConnectClient.from_settings(settings)


def task_state(settings: Settings, name: str) -> str | None:
    status = client(settings).status(name)
    return status["tasks"][0]["state"] if status and status["tasks"] else None


def drop_scratch(settings: Settings, scratch: Scratch) -> None:
    connect = client(settings)
    if connect.connector_config(scratch.name) is not None:
        connect.stop(scratch.name)
        connect.wait_state(scratch.name, "STOPPED")
        connect.reset_offsets(scratch.name)
        connect.delete(scratch.name)
    with superuser(settings) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                               (scratch.schema,)).fetchone()
            if row is None or not row[0]:
                if row is not None:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (scratch.schema,))
                break
            time.sleep(0.5)
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(scratch.schema)))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(scratch.schema)))
    scratch.password_file.unlink(missing_ok=True)
    admin = clients.admin(settings)
    topics = [f"{scratch.prefix}.{scratch.schema}.probe", f"__debezium-heartbeat.{scratch.prefix}"]
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        try:
            future.result(timeout=30)
        except Exception as e:  # a topic that never appeared is fine
            if "UNKNOWN_TOPIC" not in str(e):
                raise


@pytest.fixture(scope="module")
def scratch(pipeline: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    settings = pipeline
    made = Scratch(uuid.uuid4().hex[:8], tmp_path_factory.mktemp("connectors"),
                   StackLayout.of(settings).connector_secrets)
    table = sql.Identifier(made.schema, "probe")
    with superuser(settings) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(made.schema)))
        conn.execute(sql.SQL("CREATE TABLE {} (seat_id int PRIMARY KEY, state text)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'open')").format(table))
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(made.schema), table))
        debezium = sql.Identifier(settings.pg_debezium_user)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(made.schema),
                                                                      debezium))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(table, debezium))
    made.set_password(settings.pg_debezium_password.get_secret_value())
    made.write()
    try:
        yield made
    finally:
        drop_scratch(settings, made)
        # The shared connector is still there, unchanged and running.
        assert client(settings).wait_running(settings.connector_name)


@pytest.fixture(scope="module")
def main_config(pipeline: Settings) -> dict[str, str]:
    config = client(pipeline).connector_config(pipeline.connector_name)
    assert config is not None
    return config


def break_task(settings: Settings, scratch: Scratch) -> None:
    """Drop the connector's publication under it and restart: the task fails for good.

    (A wrong password does not do: Debezium retries a failed login forever and the task stays
    RUNNING, which Connect's status cannot tell from health.)
    """
    with superuser(settings) as conn:
        conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(scratch.schema)))
    client(settings).restart(scratch.name, only_failed=False)
    wait_for(lambda: task_state(settings, scratch.name) == "FAILED", timeout=60,
             what=f"{scratch.name}'s task to fail")


def repair(settings: Settings, scratch: Scratch) -> None:
    with superuser(settings) as conn:
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(scratch.schema), sql.Identifier(scratch.schema, "probe")))


def test_apply_creates_and_applying_again_changes_nothing(pipeline: Settings, scratch: Scratch) -> None:
    first = cli("apply", "--dir", str(scratch.folder))
    assert first.exit_code == 0, first.output
    assert f"{scratch.name}: created" in first.output
    assert f"{scratch.name}: running" in first.output
    # ticketing-host runs without a file in this folder: planned as an orphan and left alone.
    assert "no file: kept" in first.output

    again = cli("apply", "--dir", str(scratch.folder), "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["applied"] == {}
    assert report["plan"]["summary"]["unchanged"] == 1
    assert report["plan"]["summary"]["orphan"] >= 1
    assert client(pipeline).connector_config(scratch.name) == {**scratch.config(), "name": scratch.name}


def test_a_changed_key_is_planned_then_applied(pipeline: Settings, scratch: Scratch) -> None:
    scratch.write(**{"heartbeat_interval_ms": "20000"})
    plan = cli("plan", "--dir", str(scratch.folder), "--json", "--detailed-exitcode")
    assert plan.exit_code == 4, plan.output
    [item] = [c for c in json.loads(plan.stdout)["connectors"] if c["connector"] == scratch.name]
    assert item == {"connector": scratch.name, "action": "change", "changes": [
        {"key": "heartbeat.interval.ms", "change": "changed", "old": "10000", "new": "20000"}]}

    applied = cli("apply", "--dir", str(scratch.folder))
    assert applied.exit_code == 0, applied.output
    assert f"{scratch.name}: updated" in applied.output
    assert client(pipeline).connector_config(scratch.name)["heartbeat.interval.ms"] == "20000"
    assert cli("plan", "--dir", str(scratch.folder), "--detailed-exitcode").exit_code == 0


def test_the_dagster_job_applies_and_records_the_plan(pipeline: Settings, scratch: Scratch) -> None:
    scratch.write(**{"heartbeat_interval_ms": "15000"})
    result = dagster_connectors.deploy_connectors_job.execute_in_process(
        resources=resources,
        run_config={"ops": {"apply_connector_files": {"config": {
            "connectors_dir": str(scratch.folder)}}}})
    assert result.success
    [materialized] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = materialized.event_specific_data.metadata  # type: ignore[union-attr]
    assert "`heartbeat.interval.ms` | 20000 | 15000" in metadata["plan"].value
    assert metadata["applied"].value == {scratch.name: "updated"}
    client(pipeline).wait_running(scratch.name)


def test_an_invalid_config_is_refused_naming_the_field(pipeline: Settings, scratch: Scratch) -> None:
    before = client(pipeline).connector_config(scratch.name)
    try:
        scratch.write(**{"heartbeat_interval_ms": "15000", "snapshot_mode": "sometimes"})
        refused = cli("apply", "--dir", str(scratch.folder))
        assert refused.exit_code == 1, refused.output
        assert "snapshot.mode" in refused.output
        assert "Value must be one of" in refused.output.replace("\n", " ")
        assert "nothing was applied" in refused.output
        validate = cli("validate", "--dir", str(scratch.folder), "--json")
        assert validate.exit_code == 1
        assert [e["key"] for e in json.loads(validate.stdout)] == ["snapshot.mode"]
    finally:
        scratch.write(**{"heartbeat_interval_ms": "15000"})
    assert client(pipeline).connector_config(scratch.name) == before
    assert task_state(pipeline, scratch.name) == "RUNNING"


def test_a_failed_task_is_seen_by_status_and_repaired_by_restart(pipeline: Settings,
                                                                  scratch: Scratch) -> None:
    break_task(pipeline, scratch)
    status = cli("status", scratch.name, "--json")
    assert status.exit_code == 1
    [health] = json.loads(status.stdout)
    assert health["failed"] and health["tasks"][0]["state"] == "FAILED"
    assert "publication" in health["tasks"][0]["trace"].lower(), health
    assert len(health["tasks"][0]["trace"]) <= 300

    repair(pipeline, scratch)
    restarted = cli("restart", scratch.name)
    assert (restarted.exit_code, restarted.output) == (
        0, f"{scratch.name}: restart requested (failed tasks)\n")
    wait_for(lambda: task_state(pipeline, scratch.name) == "RUNNING", timeout=60,
             what=f"{scratch.name}'s task to run again")
    assert cli("status", scratch.name).exit_code == 0


def evaluate_sensor(cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(cursor=cursor, resources=resources)
    result = dagster_connectors.connector_health_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_the_sensor_restarts_a_failed_task_then_keeps_restarting_and_reports(
        pipeline: Settings, scratch: Scratch) -> None:
    break_task(pipeline, scratch)
    repair(pipeline, scratch)
    first = evaluate_sensor(None)
    assert not first.run_requests
    assert f"{scratch.name}: restarted failed tasks (restart 1;" in str(first.skip_reason)
    assert json.loads(first.cursor or "{}")[scratch.name]["restarts"] == 1
    wait_for(lambda: task_state(pipeline, scratch.name) == "RUNNING", timeout=60,
             what="the sensor's restart to repair the task")

    # A connector that failed report_after restarts in a row is reported once, and restarted
    # still: the sensor never gives up on it.
    break_task(pipeline, scratch)
    try:
        used_up = json.dumps({scratch.name: {"restarts": dagster_connectors.POLICY.report_after,
                                             "last_restart": 0.0, "reported": False}})
        report = evaluate_sensor(used_up)
        [run] = report.run_requests or []
        config = run.run_config["ops"]["report_connector_failure"]["config"]
        assert config["connector"] == scratch.name
        assert "publication" in config["error"].lower(), config
        kept = json.loads(report.cursor or "{}")[scratch.name]
        assert kept["reported"] and kept["restarts"] == dagster_connectors.POLICY.report_after + 1
        # The sensor restarted it with the report: it runs until the broken publication fails
        # it again, and only a failed task has a backoff to wait out.
        def waiting() -> dg.SensorResult | None:
            result = evaluate_sensor(report.cursor)
            return result if "next restart in" in str(result.skip_reason) else None
        later = wait_for(waiting, timeout=60, what="the restarted task to fail again")
        assert not later.run_requests
        # Once its backoff has passed, it is restarted again (and not reported again).
        due = json.dumps({scratch.name: {**kept, "last_restart": 0.0}})
        again = evaluate_sensor(due)
        assert not again.run_requests
        assert f"{scratch.name}: restarted failed tasks" in str(again.skip_reason)
        failed_run = dagster_connectors.connector_failure_report.execute_in_process(
            run_config=run.run_config, raise_on_error=False)
        assert not failed_run.success
    finally:
        repair(pipeline, scratch)
        client(pipeline).restart(scratch.name)
        wait_for(lambda: task_state(pipeline, scratch.name) == "RUNNING", timeout=60,
                 what=f"{scratch.name}'s task to run again")


def slot_exists(settings: Settings, slot: str) -> bool:
    with superuser(settings) as conn:
        return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchone() is not None


def lsn_of(offsets: list[dict[str, Any]]) -> int | None:
    return next((o["offset"].get("lsn") for o in offsets if o.get("offset")), None)


def test_offsets_are_shown_and_reset_with_the_slot(pipeline: Settings, scratch: Scratch) -> None:
    shown = cli("offsets", "show", scratch.name, "--json")
    assert shown.exit_code == 0, shown.output
    assert lsn_of(json.loads(shown.stdout)[scratch.name])
    assert slot_exists(pipeline, scratch.schema)

    reset = cli("offsets", "reset", scratch.name, "--drop-slot", "--yes")
    assert reset.exit_code == 0, reset.output
    assert "will be stopped, its source offsets deleted and its replication slot dropped" in (
        reset.output)
    assert f"replication slot {scratch.schema} dropped" in reset.output
    assert client(pipeline).status(scratch.name)["connector"]["state"] == "STOPPED"  # type: ignore[index]
    assert lsn_of(client(pipeline).offsets(scratch.name)) is None
    assert not slot_exists(pipeline, scratch.schema)

    assert cli("resume", scratch.name).exit_code == 0
    client(pipeline).wait_running(scratch.name)
    # A fresh start: the slot is made again and the snapshot commits a new offset.
    wait_for(lambda: lsn_of(client(pipeline).offsets(scratch.name)), timeout=60,
             what="an offset after the new snapshot")
    assert slot_exists(pipeline, scratch.schema)


def test_prune_removes_a_connector_that_has_no_file(pipeline: Settings, scratch: Scratch,
                                                    main_config: dict[str, str]) -> None:
    pruned = cli("apply", "--dir", str(CONNECTORS_DIR), "--prune", "--yes", "--json")
    assert pruned.exit_code == 0, pruned.output
    report = json.loads(pruned.stdout)
    assert report["applied"] == {scratch.name: "deleted"}
    assert client(pipeline).connector_config(scratch.name) is None
    assert client(pipeline).connector_config(pipeline.connector_name) == main_config
