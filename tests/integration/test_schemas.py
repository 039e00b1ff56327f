"""The schema workflow against the real Apicurio Registry, on throwaway subjects.

Also: producers never register (AvroEncoder fails clearly), and every CDC topic's records,
whose schemas Debezium's converter registered, decode in Python through the registry.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry.error import SchemaRegistryError
from typer.testing import CliRunner

from pipelines.avro import AvroDecoder, AvroEncoder, WireFormatError
from pipelines.avro.schemas import (
    CompatibilityLevels,
    IncompatibleSchemaError,
    LocalSchema,
    SchemaRegistry,
    check_schemas,
    diff_schema,
    local_schemas,
    register_schemas,
)
from pipelines.cli.main import app
from pipelines.host.simulate import run_onsale
from pipelines.kafka import clients
from pipelines.kafka.topics import cdc_topic
from pipelines.settings import Settings
from tests.integration.conftest import end_offsets, wait_for

pytestmark = pytest.mark.integration

CAPTURED_TABLES = ["venues", "events", "sections", "price_levels", "seats", "seat_inventory",
                   "holds", "orders", "heartbeat", "debezium_signal"]


def seat_schema(*extra: dict[str, Any], drop: str | None = None,
                retype: dict[str, Any] | None = None) -> dict[str, Any]:
    fields: list[dict[str, Any]] = [
        {"name": "seat_id", "type": "long", "doc": "Seat id."},
        {"name": "status", "type": "string", "doc": "OPEN, HELD or SOLD."},
        *extra,
    ]
    fields = [{**f, **(retype or {})} if f["name"] == (retype or {}).get("name") else f
              for f in fields if f["name"] != drop]
    return {"type": "record", "name": "Seat", "namespace": "io.seatflow.test", "doc": "A seat.",
            "fields": fields}


NOTE = {"name": "note", "type": ["null", "string"], "default": None, "doc": "Free text."}


@pytest.fixture
def registry(running_stack: Settings) -> SchemaRegistry:
    return SchemaRegistry.from_settings(running_stack)


@pytest.fixture
def subject(registry: SchemaRegistry) -> Iterator[str]:
    name = f"seatflow-test-{uuid.uuid4()}-value"
    yield name
    try:
        registry.client.delete_subject(name)
        registry.client.delete_subject(name, permanent=True)
    except SchemaRegistryError:
        pass


def local(subject: str, schema: dict[str, Any]) -> list[LocalSchema]:
    return [LocalSchema(subject, Path(f"{subject}.avsc"), json.dumps(schema))]


def test_compatible_change_registers_a_new_version_and_twice_is_a_no_op(
        registry: SchemaRegistry, subject: str) -> None:
    levels = CompatibilityLevels("BACKWARD_TRANSITIVE")
    [first] = register_schemas(registry, local(subject, seat_schema()), levels=levels)
    assert (first.status, first.version) == ("registered", 1)
    assert registry.level(subject) == "BACKWARD_TRANSITIVE"

    [again] = register_schemas(registry, local(subject, seat_schema()), levels=levels)
    assert (again.status, again.version, again.schema_id) == ("unchanged", 1, first.schema_id)
    assert registry.versions(subject) == [1]

    evolved = local(subject, seat_schema(NOTE))
    [check] = check_schemas(registry, evolved, levels)
    assert (check.status, check.problems) == ("compatible", ())
    assert diff_schema(registry, evolved[0]).lines  # differs from version 1 until registered
    [second] = register_schemas(registry, evolved, levels=levels)
    assert (second.status, second.version) == ("registered", 2)
    assert registry.versions(subject) == [1, 2]
    assert diff_schema(registry, evolved[0]).identical


@pytest.mark.parametrize(("change", "level", "reason"), [
    (seat_schema(drop="status"), "FULL_TRANSITIVE", "status"),
    (seat_schema(retype={"name": "status", "type": "int"}), "BACKWARD_TRANSITIVE", "STRING"),
], ids=["removed-field-without-default", "changed-type"])
def test_breaking_change_is_refused_by_check_and_register(
        registry: SchemaRegistry, subject: str, change: dict[str, Any], level: str,
        reason: str) -> None:
    levels = CompatibilityLevels(level)
    register_schemas(registry, local(subject, seat_schema()), levels=levels)

    [check] = check_schemas(registry, local(subject, change), levels)
    assert check.status == "incompatible"
    # The registry's own reasons, from its dry run (levels in the registry match the repo's).
    assert any(p.startswith("registry: ") and reason in p for p in check.problems), check.problems

    with pytest.raises(IncompatibleSchemaError) as refused:
        register_schemas(registry, local(subject, change), levels=levels)
    assert refused.value.checks[0].problems == check.problems
    assert registry.versions(subject) == [1]


def test_check_judges_by_the_repo_level_when_the_registry_has_another(
        registry: SchemaRegistry, subject: str) -> None:
    register_schemas(registry, local(subject, seat_schema()), levels=CompatibilityLevels("NONE"))
    changed = local(subject, seat_schema(retype={"name": "status", "type": "int"}))
    [check] = check_schemas(registry, changed, CompatibilityLevels("BACKWARD"))
    assert (check.status, check.registry_level) == ("incompatible", "NONE")
    assert check.problems == ("new schema cannot read version 1: /fields/status/type: "
                              "type changed from string to int",)


def test_the_registry_itself_refuses_a_breaking_version(registry: SchemaRegistry, subject: str) -> None:
    register_schemas(registry, local(subject, seat_schema()),
                     levels=CompatibilityLevels("BACKWARD_TRANSITIVE"))
    with pytest.raises(SchemaRegistryError) as refused:
        registry.register(subject, json.dumps(seat_schema(retype={"name": "status", "type": "int"})))
    assert refused.value.http_status_code == 409
    assert registry.versions(subject) == [1]


def test_producer_fails_clearly_when_its_schema_is_missing_or_differs(
        registry: SchemaRegistry, subject: str) -> None:
    text = json.dumps(seat_schema())
    with pytest.raises(WireFormatError, match=rf"schema of subject '{subject}' is not registered "
                                              r"or differs from schemas/.*seatflow schemas register"):
        AvroEncoder(registry.client, subject, text)
    assert registry.versions(subject) == []  # looking up registered nothing

    register_schemas(registry, local(subject, seat_schema()),
                     levels=CompatibilityLevels("BACKWARD_TRANSITIVE"))
    with pytest.raises(WireFormatError, match="is not registered or differs"):
        AvroEncoder(registry.client, subject, json.dumps(seat_schema(NOTE)))
    assert AvroEncoder(registry.client, subject, text).encode({"seat_id": 1, "status": "OPEN"})


def test_cli_check_passes_on_the_deployed_repo_schemas(pipeline: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.cli import schemas_cmd
    monkeypatch.setattr(schemas_cmd, "get_settings", lambda: pipeline)
    result = CliRunner().invoke(app, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert f"{len(local_schemas())} schemas ok" in result.output
    assert "unchanged" in result.output and "offline" not in result.output


def _write_to_every_table(settings: Settings) -> None:
    """holds and orders are empty after seeding, debezium_signal until a signal is sent."""
    run_onsale(settings, duration=2, seed=4)
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        conn.execute("INSERT INTO ticketing.debezium_signal (id, type, data) VALUES (%s, 'log', %s)",
                     (str(uuid.uuid4()), json.dumps({"message": "seatflow schema test"})))


def test_every_captured_table_decodes_through_the_registry(pipeline: Settings) -> None:
    settings = pipeline
    _write_to_every_table(settings)
    registry = SchemaRegistry.from_settings(settings)
    subjects = set(registry.client.get_subjects())
    decoder = AvroDecoder(registry.client)
    consumer = clients.consumer(settings, group_id=f"seatflow-test-{uuid.uuid4()}", **{
        "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        for table in CAPTURED_TABLES:
            topic = cdc_topic(settings, table)
            # heartbeat: written by Debezium's heartbeat query every 10 s.
            wait_for(lambda t=topic: sum(end_offsets(settings, t).values()) > 0, timeout=60,
                     what=f"a record in {topic}")
            assert {f"{topic}-key", f"{topic}-value"} <= subjects or \
                {f"{topic}-key", f"{topic}-value"} <= set(registry.client.get_subjects()), topic
            # Every partition: one whose end is past 0 may hold only an earlier test's truncate,
            # tombstones or an aborted transaction, none of which a row's first change is.
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                             for p in end_offsets(settings, topic)])
            msg = wait_for(lambda: _first_record(consumer), timeout=30, what=f"reading {topic}")
            key, value = decoder.decode(msg.key()), decoder.decode(msg.value())
            assert isinstance(key, dict) and key, (topic, key)
            assert isinstance(value, dict) and value["op"] in {"r", "c", "u", "d"}, (topic, value)
            assert value["source"]["table"] == table
            row = value["after"] or value["before"]
            assert set(key) <= set(row), (topic, key, row)
    finally:
        consumer.close()


def _first_record(consumer: Consumer) -> Any:
    """The first change of a row: a truncate (an earlier test's) is table-wide and has no key,
    and a record another test injected as junk has no Avro magic byte."""
    msg = consumer.poll(1.0)
    keyed = (msg is not None and msg.error() is None and msg.value() is not None
             and msg.key() is not None and msg.key()[:1] == b"\x00")
    return msg if keyed else None


def test_dagster_schema_deploy_materializes_with_the_results_as_metadata(pipeline: Settings) -> None:
    import dagster as dg

    from pipelines.orchestration import schemas as orchestration
    from pipelines.orchestration.resources import SeatflowResource

    defs = dg.Definitions.merge(orchestration.defs, dg.Definitions(
        resources={"seatflow": SeatflowResource(
            bind_host=pipeline.bind_host, registry_host=pipeline.registry_host,
            registry_port=pipeline.registry_port)}))
    result = defs.resolve_job_def("deploy_schemas").execute_in_process()
    assert result.success
    [materialization] = result.asset_materializations_for_node("schemas__registered_schemas")
    metadata = materialization.metadata
    assert metadata["new_versions"].value == 0  # the pipeline fixture registered them already
    assert "seat-availability-value" in str(metadata["subjects"].value)
    [check] = result.get_asset_check_evaluations()
    assert check.passed
