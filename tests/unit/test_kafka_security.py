"""Kafka with SASL/SCRAM and ACLs on the local stack: the clients' login from the generated
passwords, configs that hold no password, the SCRAM users at format time, and the ACLs."""

from __future__ import annotations

import configparser
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType
from dotenv import dotenv_values

from pipelines.kafka import clients
from pipelines.kafka.acls import CONNECT_GROUP, acl_bindings, stack_grants
from pipelines.kafka.reading import reader_group_prefix, topic_reader
from pipelines.kafka.topics import SEAT_AVAILABILITY, cdc_topic
from pipelines.processor.config import GROUP_ID, ProcessorConfig
from pipelines.processor.published import REBUILD_READER
from pipelines.processor.reference_feed import REFERENCE_READER
from pipelines.serve.follower import SERVE_READER
from pipelines.settings import (
    GENERATED_SECRETS,
    KAFKA_PRINCIPALS,
    Settings,
    generated_secrets_file,
)
from pipelines.stack import kafka
from pipelines.stack.configs import TEMPLATES_DIR, placeholders, render_all, supervisord_conf
from pipelines.stack.errors import StackError
from pipelines.stack.layout import StackLayout
from pipelines.stack.secrets import ensure_secrets, with_generated_secrets

pytestmark = pytest.mark.unit

KAFKA_FIELDS = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_USERNAME",
                "KAFKA_PASSWORD", "HOME")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*(n.upper() for n in GENERATED_SECRETS), *KAFKA_FIELDS):
        monkeypatch.delenv(f"SEATFLOW_{name}", raising=False)


@pytest.fixture
def home(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stack home whose passwords were generated, named by SEATFLOW_HOME."""
    home = tmp_path / "home"
    ensure_secrets(Settings(home=home))
    monkeypatch.setenv("SEATFLOW_HOME", str(home))
    return home


def generated(home: Path, principal: str) -> str:
    value = dotenv_values(generated_secrets_file(home))[f"SEATFLOW_KAFKA_{principal.upper()}_PASSWORD"]
    assert value
    return value


def test_every_principal_gets_a_generated_password(home: Path) -> None:
    values = [generated(home, p) for p in KAFKA_PRINCIPALS]
    assert len(set(values)) == len(KAFKA_PRINCIPALS)
    assert all(len(v) >= 40 for v in values)


def test_clients_of_the_stack_log_in_as_admin_by_default(home: Path) -> None:
    config = clients.client_config(Settings())
    assert config["security.protocol"] == "SASL_PLAINTEXT"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "admin"
    assert config["sasl.password"] == generated(home, "admin")
    assert generated(home, "admin") not in repr(config)


def test_a_named_principal_gets_its_own_password(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_KAFKA_USERNAME", "processor")
    config = clients.client_config(Settings())
    assert (config["sasl.username"], config["sasl.password"]) == (
        "processor", generated(home, "processor"))
    assert Settings(kafka_username="reader").password("kafka_password") == generated(home, "reader")


def test_a_login_given_otherwise_is_left_alone(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert clients.client_config(Settings()) == {"bootstrap.servers": Settings().kafka_bootstrap}
    monkeypatch.setenv("SEATFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SEATFLOW_KAFKA_USERNAME", "admin")
    monkeypatch.setenv("SEATFLOW_KAFKA_PASSWORD", "elsewhere")
    config = clients.client_config(Settings())
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == "elsewhere"


def test_a_stack_without_kafka_passwords_is_plaintext(tmp_path: Path, clean_env: None) -> None:
    settings = Settings(home=tmp_path)
    assert settings.kafka_security_protocol == "PLAINTEXT" and settings.kafka_username is None


def test_settings_made_before_the_first_up_get_the_login(tmp_path: Path, clean_env: None) -> None:
    before = Settings(home=tmp_path)
    ensure_secrets(before)
    after = with_generated_secrets(before)
    assert (after.kafka_security_protocol, after.kafka_sasl_mechanism, after.kafka_username) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-512", "admin")
    assert after.password("kafka_password") == generated(tmp_path, "admin")
    reader = with_generated_secrets(Settings(home=tmp_path, kafka_username="reader"))
    assert reader.password("kafka_password") == generated(tmp_path, "reader")


@pytest.fixture
def rendered(home: Path, tmp_path: Path) -> tuple[Settings, StackLayout]:
    settings = with_generated_secrets(Settings(home=home, cache_dir=tmp_path / "cache"))
    layout = StackLayout.of(settings)
    render_all(settings, layout)
    kafka.write_kafka_secrets(settings, layout)
    return settings, layout


def props(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_the_rendered_kafka_configs_hold_no_password(
        rendered: tuple[Settings, StackLayout], home: Path) -> None:
    _, layout = rendered
    passwords = [generated(home, p) for p in KAFKA_PRINCIPALS]
    for path in layout.conf.iterdir():
        text = path.read_text()
        assert not any(p in text for p in passwords), path.name
    for name, principal in kafka.KAFKA_SECRET_FILES.items():
        secret = kafka.kafka_secret_folder(layout, principal) / name
        assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert dotenv_values(secret) == {"password": generated(home, principal)}


def test_the_broker_asks_every_client_to_log_in_and_authorizes_it(
        rendered: tuple[Settings, StackLayout]) -> None:
    _, layout = rendered
    broker = props(layout.conf / "server.properties")
    controller = props(layout.conf / "controller.properties")
    assert set(broker["listener.security.protocol.map"].split(",")) == {
        "CONTROLLER:SASL_PLAINTEXT", "CLIENT:SASL_PLAINTEXT"}
    assert broker["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert broker["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert controller["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT"
    for conf in (broker, controller):
        assert conf["sasl.mechanism.controller.protocol"] == "PLAIN"
        assert conf["authorizer.class.name"] == (
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer")
        assert conf["super.users"] == "User:admin"
        assert conf["allow.everyone.if.no.acl.found"] == "false"
        admin_file = f"{layout.kafka_secrets}/kafka-admin.properties"
        assert conf["config.providers.file.param.allowed.paths"] == admin_file
        assert f'password="${{file:{admin_file}:password}}"' in (
            conf["listener.name.controller.plain.sasl.jaas.config"])
    assert f'user_admin="${{file:{layout.kafka_secrets}/kafka-admin.properties:password}}"' in (
        controller["listener.name.controller.plain.sasl.jaas.config"])
    assert broker["auto.create.topics.enable"] == "false"


def test_connect_logs_in_as_connect_and_cannot_read_the_brokers_password(
        rendered: tuple[Settings, StackLayout]) -> None:
    _, layout = rendered
    worker = props(layout.conf / "connect-distributed.properties")
    assert worker["group.id"] == CONNECT_GROUP
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert worker[f"{prefix}security.protocol"] == "SASL_PLAINTEXT"
        assert worker[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert 'username="connect"' in worker[f"{prefix}sasl.jaas.config"]
        assert f"${{file:{layout.secrets}/kafka-connect.properties:password}}" in (
            worker[f"{prefix}sasl.jaas.config"])
    # Connector configs may read only the worker's own login and the connectors' folder, not
    # the rest of the secrets folder (the generated passwords, the REST users); admin's file is
    # elsewhere besides.
    assert worker["config.providers.file.param.allowed.paths"].split(",") == [
        str(layout.secrets / "kafka-connect.properties"), str(layout.connector_secrets)]
    assert not layout.kafka_secrets.is_relative_to(layout.secrets)
    assert not (layout.secrets / "kafka-admin.properties").exists()


def test_supervised_programs_log_in_as_their_principal_without_a_password_in_the_conf(
        rendered: tuple[Settings, StackLayout], home: Path) -> None:
    settings, layout = rendered
    text = supervisord_conf(settings, layout, Path("/usr/bin/java"), Path("/opt/jdk/bin/java"))
    assert not any(generated(home, p) in text for p in KAFKA_PRINCIPALS)
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    assert 'SEATFLOW_KAFKA_USERNAME="processor"' in parser["program:processor"]["environment"]
    assert 'SEATFLOW_KAFKA_USERNAME="reader"' in parser["program:serve"]["environment"]


def test_a_password_kafka_cannot_carry_is_refused(tmp_path: Path, clean_env: None) -> None:
    settings = Settings(home=tmp_path, kafka_admin_password='a"b', kafka_connect_password="c")
    with pytest.raises(StackError, match="SEATFLOW_KAFKA_ADMIN_PASSWORD"):
        kafka.write_kafka_secrets(settings, StackLayout.of(settings))


def test_a_storage_formatted_before_the_logins_is_refused_with_the_reset(
        rendered: tuple[Settings, StackLayout]) -> None:
    settings, layout = rendered
    for data in (layout.controller_data, layout.kafka_data):
        data.mkdir(parents=True)
        (data / "meta.properties").write_text("cluster.id=x\n")
    with pytest.raises(StackError, match=r"no SCRAM users.*seatflow stack reset"):
        kafka.format_storage(Path("/usr/bin/java"), layout, settings)
    (layout.controller_data.parent / kafka.SCRAM_MARKER).write_text("admin\n")
    assert kafka.format_storage(Path("/usr/bin/java"), layout, settings) is False


def test_the_scram_users_are_formatted_from_an_argument_file_never_the_command_line(
        rendered: tuple[Settings, StackLayout], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings, layout = rendered
    runs: list[tuple[list[str], str]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        argfile = Path(cmd[-1].removeprefix("@"))
        assert stat.S_IMODE(argfile.stat().st_mode) == 0o600
        runs.append((cmd, argfile.read_text()))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(kafka.subprocess, "run", run)
    assert kafka.format_storage(Path("/usr/bin/java"), layout, settings) is True
    passwords = [generated(home, p) for p in KAFKA_PRINCIPALS]
    (controller_cmd, controller_args), (_, broker_args) = runs
    assert not any(p in " ".join(controller_cmd) for p in passwords)
    for principal in KAFKA_PRINCIPALS:
        assert (f'"SCRAM-SHA-512=[name={principal},password={generated(home, principal)}]"'
                in controller_args.splitlines())
    assert '"--standalone"' in controller_args.splitlines()
    assert not any(p in broker_args for p in passwords)
    assert not list(layout.kafka_secrets.glob("*.args"))  # removed after
    assert (layout.controller_data.parent / kafka.SCRAM_MARKER).exists()


def test_argument_file_lines_quote_what_the_launcher_would_split() -> None:
    assert kafka.argfile_line('/a b/c"d\\e') == '"/a b/c\\"d\\\\e"\n'


def by_principal(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for b in acl_bindings(stack_grants(settings)):
        found.setdefault(b.principal.removeprefix("User:"), []).append(
            (b.restype, b.name, b.resource_pattern_type, b.operation))
    return found


def test_the_reader_may_only_read_the_availability_topics() -> None:
    reader = by_principal(Settings())["reader"]
    assert {op for *_, op in reader} == {AclOperation.READ, AclOperation.DESCRIBE}
    assert {(t, n, p) for t, n, p, _ in reader} == {
        *((ResourceType.TOPIC, name, ResourcePatternType.LITERAL)
          for name in ("seat-availability", "section-availability", "event-availability")),
        # serve's topic reader: a group it never joins, but whose coordinator it looks up.
        (ResourceType.GROUP, reader_group_prefix(SERVE_READER), ResourcePatternType.PREFIXED)}


def test_the_topic_readers_groups_are_granted_to_their_principals(
        monkeypatch: pytest.MonkeyPatch) -> None:
    groups: list[str] = []
    monkeypatch.setattr(clients, "consumer",
                        lambda _settings, *, group_id, **_: groups.append(group_id))
    rows = by_principal(Settings())
    for who, purpose in (("processor", REBUILD_READER), ("processor", REFERENCE_READER),
                         ("reader", SERVE_READER)):
        topic_reader(Settings(), purpose)
        group = groups[-1]
        assert any(t == ResourceType.GROUP and op == AclOperation.READ
                   and p == ResourcePatternType.PREFIXED and group.startswith(name)
                   for t, name, p, op in rows[who]), (who, purpose)


def test_only_connect_writes_the_cdc_topics_and_only_the_processor_the_availability() -> None:
    settings = Settings()
    grants = by_principal(settings)
    cdc = cdc_topic(settings, "seat_inventory")

    def writers(topic: str) -> set[str]:
        return {who for who, rows in grants.items() for t, name, pattern, op in rows
                if t == ResourceType.TOPIC and op in (AclOperation.WRITE, AclOperation.ALL)
                and (topic == name if pattern == ResourcePatternType.LITERAL
                     else topic.startswith(name))}

    assert writers(cdc) == {"connect"}
    assert writers(SEAT_AVAILABILITY) == {"processor"}
    assert "admin" not in grants  # a super user needs none


def test_the_transactional_ids_in_use_are_granted() -> None:
    settings = Settings()
    rows = by_principal(settings)

    def granted(who: str, txn_id: str) -> bool:
        return any(t == ResourceType.TRANSACTIONAL_ID and op == AclOperation.WRITE
                   and (txn_id.startswith(name) if pattern == ResourcePatternType.PREFIXED
                        else txn_id == name)
                   for t, name, pattern, op in rows[who])

    assert granted("processor", ProcessorConfig.of(settings, slot=3).transactional_id)
    assert not granted("processor", f"{CONNECT_GROUP}-ticketing-host-0")
    assert granted("connect", f"{CONNECT_GROUP}-ticketing-host-0")
    assert granted("connect", f"connect-cluster-{CONNECT_GROUP}")
    assert (ResourceType.GROUP, GROUP_ID, ResourcePatternType.LITERAL, AclOperation.READ) in (
        rows["processor"])


def test_the_templates_name_the_secrets_files_kafka_py_writes() -> None:
    text = "".join((TEMPLATES_DIR / n).read_text() for n in (
        "server.properties", "controller.properties", "connect-distributed.properties"))
    assert "${KAFKA_SECRETS_DIR}/kafka-admin.properties" in text
    assert "${SECRETS_DIR}/kafka-connect.properties" in text
    values = placeholders(Settings(pg_registry_password="r"),
                          StackLayout(home=Path("/h"), cache=Path("/c")))
    assert {"SECRETS_DIR", "KAFKA_SECRETS_DIR"} <= set(values)


def test_principals_passwords_given_in_the_environment_imply_the_login_too(
        tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # docker-compose.yml's .env: no generated file, the passwords given.
    monkeypatch.setenv("SEATFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("SEATFLOW_KAFKA_PROCESSOR_PASSWORD", "p-pass")
    monkeypatch.setenv("SEATFLOW_KAFKA_USERNAME", "processor")
    config = clients.client_config(Settings())
    assert (config["security.protocol"], config["sasl.username"], config["sasl.password"]) == (
        "SASL_PLAINTEXT", "processor", "p-pass")
    monkeypatch.delenv("SEATFLOW_KAFKA_USERNAME")
    monkeypatch.setenv("SEATFLOW_KAFKA_ADMIN_PASSWORD", "a-pass")
    assert clients.client_config(Settings())["sasl.password"] == "a-pass"

