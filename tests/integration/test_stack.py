"""The local stack itself: health, the Avro path from Debezium to Python, durable schemas."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import requests
from confluent_kafka import KafkaError, Message
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from psycopg import sql
from typer.testing import CliRunner

from pipelines import stack
from pipelines.avro import registry_client
from pipelines.cli.stack_cmd import app as stack_app
from pipelines.connect import connect_session
from pipelines.kafka import clients
from pipelines.settings import Settings
from pipelines.stack.layout import StackLayout
from pipelines.stack.postgres import superuser_dsn

pytestmark = pytest.mark.integration

# The project's wrapper of Apicurio's AvroConverter (stack/converter): registry outages are retried.
AVRO_CONVERTER = "io.seatflow.connect.RetryingAvroConverter"


def converter_config(prefix: str) -> dict[str, str]:
    """What a connector file carries per converter (key / value) for Confluent-framed Avro."""
    return {
        f"{prefix}.converter": AVRO_CONVERTER,
        f"{prefix}.converter.apicurio.registry.url": "${env:SEATFLOW_REGISTRY_URL}",
        # It registers the schema: the registry's writer (without a login: 401).
        f"{prefix}.converter.apicurio.auth.username": "${env:SEATFLOW_REGISTRY_WRITER_USER}",
        f"{prefix}.converter.apicurio.auth.password": "${env:SEATFLOW_REGISTRY_WRITER_PASSWORD}",
        f"{prefix}.converter.apicurio.registry.auto-register": "true",
        f"{prefix}.converter.apicurio.registry.find-latest": "true",
        # Magic byte + 4-byte id, no id headers; the id is a contentId, which ccompat serves.
        f"{prefix}.converter.apicurio.registry.as-confluent": "true",
        f"{prefix}.converter.apicurio.registry.use-id": "contentId",
        f"{prefix}.converter.apicurio.registry.headers.enabled": "false",
        # One self-contained schema, no references that Python readers could not resolve.
        f"{prefix}.converter.apicurio.registry.dereference-schema": "true",
    }


@dataclass(frozen=True)
class Probe:
    """A throwaway table, publication, slot and connector, all named after one run id."""

    run: str

    @property
    def schema(self) -> str:
        return f"seatflow_stack_test_{self.run}"

    @property
    def table(self) -> str:
        return "seat_probe"

    @property
    def publication(self) -> str:
        return f"{self.schema}_pub"

    @property
    def slot(self) -> str:
        return self.schema

    @property
    def connector(self) -> str:
        return f"seatflow-stack-test-{self.run}"

    @property
    def prefix(self) -> str:
        """Under the CDC topics' prefix, whose topics the connect principal may create and
        write (pipelines/kafka/acls.py)."""
        return f"{Settings.model_fields['topic_prefix'].default}.{self.schema}"

    @property
    def topic(self) -> str:
        return f"{self.prefix}.{self.schema}.{self.table}"


def superuser_conn(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(superuser_dsn(settings, settings.pg_database), autocommit=True,
                           connect_timeout=10)


def ensure_debezium_role(conn: psycopg.Connection, settings: Settings) -> None:
    """The role the migrations create, so that the test needs no migration run."""
    user = sql.Identifier(settings.pg_debezium_user)
    password = sql.Literal(settings.pg_debezium_password.get_secret_value())
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                          (settings.pg_debezium_user,)).fetchone()
    verb = sql.SQL("ALTER" if exists else "CREATE")
    conn.execute(sql.SQL("{} ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
        verb, user, password))


def drop_probe(settings: Settings, probe: Probe) -> None:
    """Stop the connector, delete its offsets and itself, drop its slot, tables and topic."""
    base = f"{settings.connect_url}/connectors/{probe.connector}"
    connect = connect_session(settings)
    if connect.get(base, timeout=10).status_code == 200:
        connect.put(f"{base}/stop", timeout=30).raise_for_status()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = connect.get(f"{base}/status", timeout=10).json()["connector"]["state"]
            if state == "STOPPED":
                break
            time.sleep(0.5)
        connect.delete(f"{base}/offsets", timeout=30).raise_for_status()
        connect.delete(base, timeout=30).raise_for_status()
    with superuser_conn(settings) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                               (probe.slot,)).fetchone()
            if row is None:
                break
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (probe.slot,))
                break
            time.sleep(0.5)
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
            sql.Identifier(probe.publication)))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(probe.schema)))
    admin = clients.admin(settings)
    for future in admin.delete_topics([probe.topic], operation_timeout=30).values():
        try:
            future.result(timeout=30)
        except Exception as e:  # already gone is fine
            if "UNKNOWN_TOPIC" not in str(e):
                raise
    auth = settings.registry_auth()
    for suffix in ("key", "value"):
        subject = f"{settings.ccompat_url}/subjects/{probe.topic}-{suffix}"
        requests.delete(subject, auth=auth, timeout=10)
        requests.delete(subject, params={"permanent": "true"}, auth=auth, timeout=10)


@pytest.fixture
def probe(running_stack: Settings) -> Iterator[Probe]:
    settings = running_stack
    made = Probe(uuid.uuid4().hex[:8])
    table = sql.Identifier(made.schema, made.table)
    with superuser_conn(settings) as conn:
        ensure_debezium_role(conn, settings)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(made.schema)))
        conn.execute(sql.SQL(
            "CREATE TABLE {} (seat_id int PRIMARY KEY, section text NOT NULL,"
            " price numeric(10, 2), held_at timestamptz)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'A', 49.50, now())").format(table))
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(made.publication), table))
        debezium = sql.Identifier(settings.pg_debezium_user)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(made.schema), debezium))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(table, debezium))
    try:
        yield made
    finally:
        drop_probe(settings, made)


def connector_config(probe: Probe) -> dict[str, str]:
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        # Every connection setting comes from the worker's SEATFLOW_* environment.
        "database.hostname": "${env:SEATFLOW_PG_HOST}",
        "database.port": "${env:SEATFLOW_PG_PORT}",
        "database.dbname": "${env:SEATFLOW_PG_DATABASE}",
        "database.user": "${env:SEATFLOW_DEBEZIUM_USER}",
        "database.password": "${env:SEATFLOW_DEBEZIUM_PASSWORD}",
        "topic.prefix": probe.prefix,
        # Connect creates the topic (the broker creates none by itself).
        "topic.creation.default.partitions": "-1",
        "topic.creation.default.replication.factor": "-1",
        "plugin.name": "pgoutput",
        "slot.name": probe.slot,
        "publication.name": probe.publication,
        "publication.autocreate.mode": "disabled",
        "table.include.list": f"{probe.schema}.{probe.table}",
        "snapshot.mode": "initial",
        "exactly.once.support": "required",
        "transaction.boundary": "poll",
        # Debezium 3 adds __debezium.context.* headers unless told not to.
        "extended.headers.enabled": "false",
        **converter_config("key"),
        **converter_config("value"),
    }


def consume(settings: Settings, topic: str, count: int, timeout_s: float = 120) -> list[Message]:
    consumer = clients.consumer(settings, group_id=f"seatflow-stack-test-{uuid.uuid4()}", **{
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "topic.metadata.refresh.interval.ms": 1000,
    })
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                # The topic appears only once Debezium writes its first record.
                assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, err
                continue
            found.append(msg)
    finally:
        consumer.close()
    assert len(found) >= count, f"{len(found)} of {count} records in {topic} within {timeout_s} s"
    return found


def test_status_shows_all_services_healthy(running_stack: Settings) -> None:
    rows = stack.status(running_stack)
    assert [r.name for r in rows] == ["postgres", "controller", "kafka", "registry", "connect"]
    assert all(r.state == "RUNNING" and r.healthy for r in rows), rows

    result = CliRunner().invoke(stack_app, ["status"])
    assert result.exit_code == 0, result.output
    for name in ("postgres", "controller", "kafka", "registry", "connect"):
        assert name in result.output
    assert result.output.count("healthy") == 5


def test_validate_resolves_env_placeholders(running_stack: Settings, probe: Probe) -> None:
    """Connect resolves ${env:...} in validate too, and only for allow-listed names."""
    url = f"{running_stack.connect_url}/connector-plugins/PostgresConnector/config/validate"
    config = {**connector_config(probe), "name": probe.connector}
    connect = connect_session(running_stack)
    ok = connect.put(url, json=config, timeout=60).json()
    assert ok["error_count"] == 0, ok
    # HOME is not allow-listed: the placeholder stays literal and the login fails.
    refused = connect.put(url, json={**config, "database.password": "${env:HOME}"},
                          timeout=60).json()
    assert refused["error_count"] >= 1


def test_debezium_record_is_confluent_framed_avro(running_stack: Settings, probe: Probe) -> None:
    settings = running_stack
    put = connect_session(settings).put(
        f"{settings.connect_url}/connectors/{probe.connector}/config",
        json=connector_config(probe), timeout=30)
    assert put.status_code in (200, 201), put.text
    # One row from the snapshot, one streamed after the connector started.
    snapshot = consume(settings, probe.topic, 1)
    with superuser_conn(settings) as conn:
        conn.execute(sql.SQL("INSERT INTO {} VALUES (2, 'B', 10, now())").format(
            sql.Identifier(probe.schema, probe.table)))
    records = consume(settings, probe.topic, 2)
    assert snapshot[0].value() == records[0].value()

    client = registry_client(settings)
    auth = settings.registry_auth()
    decode = AvroDeserializer(client)
    decoded = []
    for msg in records:
        assert not msg.headers(), msg.headers()
        for raw in (msg.key(), msg.value()):
            assert raw is not None
            assert raw[0] == 0, "Confluent magic byte"
            schema_id = int.from_bytes(raw[1:5], "big")
            got = requests.get(f"{settings.ccompat_url}/schemas/ids/{schema_id}", auth=auth,
                               timeout=10)
            assert got.status_code == 200, got.text
            assert not got.json().get("references"), "schema must be self-contained"
        key = decode(msg.key(), SerializationContext(msg.topic(), MessageField.KEY))
        value = decode(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        decoded.append((key, value))

    assert [k["seat_id"] for k, _ in decoded] == [1, 2]
    assert [v["op"] for _, v in decoded] == ["r", "c"]
    assert decoded[1][1]["after"]["section"] == "B"
    assert decoded[1][1]["source"]["table"] == probe.table


def test_down_then_up_keeps_registry_schemas(running_stack: Settings) -> None:
    settings = running_stack
    auth = settings.registry_auth()
    subject = f"seatflow-stack-test-{uuid.uuid4().hex[:8]}-value"
    schema = ('{"type": "record", "name": "SeatProbe", "namespace": "seatflow.test",'
              ' "fields": [{"name": "seat_id", "type": "int"}]}')
    posted = requests.post(f"{settings.ccompat_url}/subjects/{subject}/versions",
                           json={"schema": schema}, auth=auth, timeout=10)
    assert posted.status_code == 200, posted.text
    schema_id = posted.json()["id"]
    layout = StackLayout.of(settings)
    try:
        assert stack.down(settings)
        assert not layout.supervisord_pidfile.exists()
        assert all(not r.healthy and r.state == "STOPPED" for r in stack.status(settings))
        stack.up(settings)
        got = requests.get(f"{settings.ccompat_url}/schemas/ids/{schema_id}", auth=auth,
                           timeout=10)
        assert got.status_code == 200, got.text
        assert '"SeatProbe"' in got.json()["schema"]
        versions = requests.get(f"{settings.ccompat_url}/subjects/{subject}/versions",
                                auth=auth, timeout=10)
        assert versions.json() == [1]
    finally:
        if not all(r.healthy for r in stack.status(settings)):
            stack.up(settings)
        requests.delete(f"{settings.ccompat_url}/subjects/{subject}", auth=auth, timeout=10)
        requests.delete(f"{settings.ccompat_url}/subjects/{subject}",
                        params={"permanent": "true"}, auth=auth, timeout=10)
