"""Kafka on the real stack asks every client to log in and lets each principal do only what its
ACLs allow (pipelines/kafka/acls.py); no Kafka password is left where it should not be."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import SecretStr

from pipelines import stack
from pipelines.deploy import wait_caught_up
from pipelines.kafka import clients, groups
from pipelines.kafka.reading import read_topic
from pipelines.kafka.topics import SEAT_AVAILABILITY, cdc_topic
from pipelines.processor.config import GROUP_ID
from pipelines.serve.follower import SERVE_READER
from pipelines.settings import GENERATED_SECRETS, KAFKA_PRINCIPALS, PROJECT_ROOT, Settings
from pipelines.stack.layout import StackLayout
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def as_principal(settings: Settings, principal: str, password: str | None = None) -> Settings:
    secret = password if password is not None else settings.password(f"kafka_{principal}_password")
    return settings.model_copy(update={"kafka_username": principal,
                                       "kafka_password": SecretStr(secret)})


def produce_error(settings: Settings, topic: str) -> KafkaError | None:
    """The delivery error of one record produced to topic (None when it was written)."""
    producer = clients.producer(settings, **{"message.timeout.ms": 8000})
    errors: list[KafkaError | None] = []
    producer.produce(topic, key=b"k", value=b"v", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    assert errors, "no delivery report"
    return errors[0]


def test_the_stack_clients_log_in(pipeline: Settings) -> None:
    assert pipeline.kafka_security_protocol == "SASL_PLAINTEXT"
    assert pipeline.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert pipeline.kafka_username == "admin"


def test_an_unauthenticated_client_is_refused(pipeline: Settings) -> None:
    anonymous = pipeline.model_copy(update={"kafka_security_protocol": "PLAINTEXT",
                                            "kafka_sasl_mechanism": None,
                                            "kafka_username": None, "kafka_password": None})
    with pytest.raises(KafkaException):
        clients.admin(anonymous, log_level=0).list_topics(timeout=5)


def test_a_wrong_password_is_an_authentication_failure(pipeline: Settings) -> None:
    wrong = as_principal(pipeline, "reader", password=f"not-{uuid.uuid4()}")
    with pytest.raises(KafkaException) as raised:
        clients.admin(wrong, log_level=0).list_topics(timeout=10)
    assert raised.value.args[0].code() in (KafkaError._AUTHENTICATION, KafkaError._TRANSPORT,
                                           KafkaError._TIMED_OUT), raised.value


def topic_error(settings: Settings, topic: str) -> KafkaError | None:
    """The error of topic's metadata as this principal sees it (None: it may describe it)."""
    meta = clients.admin(settings).list_topics(topic, timeout=10).topics.get(topic)
    assert meta is not None
    return meta.error


def test_the_reader_reads_the_availability_but_cannot_produce_to_it(pipeline: Settings) -> None:
    reader = as_principal(pipeline, "reader")
    assert topic_error(reader, SEAT_AVAILABILITY) is None
    # Everything admin reads, the reader reads too (read after: the topic only grows), as serve
    # reads it (its topic reader's group is the one granted).
    as_admin = read_topic(pipeline, SEAT_AVAILABILITY, lambda _m: None, purpose="acl-test")
    assert read_topic(reader, SEAT_AVAILABILITY, lambda _m: None, purpose=SERVE_READER) >= as_admin
    if as_admin:  # a reader of an empty topic never polls: no group lookup to refuse
        with pytest.raises(KafkaException, match="GROUP_AUTHORIZATION_FAILED"):
            read_topic(reader, SEAT_AVAILABILITY, lambda _m: None, purpose="acl-test")
    err = produce_error(reader, SEAT_AVAILABILITY)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err


def test_the_reader_cannot_see_a_cdc_topic(pipeline: Settings) -> None:
    err = topic_error(as_principal(pipeline, "reader"), cdc_topic(pipeline, "seat_inventory"))
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert topic_error(pipeline, cdc_topic(pipeline, "seat_inventory")) is None


def test_the_processor_cannot_produce_to_a_cdc_topic(pipeline: Settings) -> None:
    processor = as_principal(pipeline, "processor")
    err = produce_error(processor, cdc_topic(pipeline, "seat_inventory"))
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err


def test_a_produce_to_a_missing_topic_does_not_create_it(pipeline: Settings) -> None:
    topic = f"seatflow-no-such-topic-{uuid.uuid4().hex[:8]}"
    err = produce_error(pipeline, topic)  # as admin, who could create it
    assert err is not None, "the record was written"
    assert topic not in clients.admin(pipeline).list_topics(timeout=10).topics


def _kafka_passwords(settings: Settings) -> list[str]:
    return [settings.password(f"kafka_{p}_password") for p in KAFKA_PRINCIPALS]


def _files_holding(paths: list[Path], secrets: list[str]) -> list[str]:
    found = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(s.encode() in data for s in secrets):
            found.append(str(path))
    return found


def test_no_password_in_the_repository_the_rendered_configs_or_the_logs(
        pipeline: Settings) -> None:
    layout = StackLayout.of(pipeline)
    every = [pipeline.password(name) for name in GENERATED_SECRETS]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    repo = [PROJECT_ROOT / line for line in listed.stdout.splitlines()]
    assert _files_holding(repo, every) == []
    # The configs of the home: the Kafka passwords are only in the secrets folder (0600). (The
    # PostgreSQL roles' are in supervisord.conf's environments and the registry's config.)
    assert _files_holding([p for p in layout.conf.rglob("*") if p.is_file()],
                          _kafka_passwords(pipeline)) == []
    assert _files_holding([p for p in layout.logs.rglob("*") if p.is_file()], every) == []


def test_no_kafka_password_on_a_command_line(pipeline: Settings) -> None:
    secrets = _kafka_passwords(pipeline)
    assert _files_holding(list(Path("/proc").glob("[0-9]*/cmdline")), secrets) == []


def test_the_supervised_processor_and_serve_run_as_their_principals(pipeline: Settings) -> None:
    """supervisord starts them as processor and reader (pipelines/stack/configs.py APP_LOGINS):
    each may do all its work, the processor joins its group and serve reads the topics."""
    layout = StackLayout.of(pipeline)
    logs = {name: layout.log_of(name) for name in ("processor", "serve")}
    sizes = {name: path.stat().st_size if path.exists() else 0 for name, path in logs.items()}
    stack.start_app(pipeline, "processor")
    stack.start_app(pipeline, "serve")
    try:
        wait_for(lambda: groups.group_members(pipeline, GROUP_ID) > 0, timeout=120,
                 what="the supervised processor in its group")

        def serving() -> bool:
            try:
                url = f"http://{pipeline.bind_host}:{pipeline.serve_port}/healthz"
                return httpx.get(url, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(serving, timeout=180, what="serve to read the availability topics")
        wait_caught_up(pipeline, timeout_s=300)
        status = stack.apps_status(pipeline)
        assert (status["processor"], status["serve"]) == ("RUNNING", "RUNNING"), status
    finally:
        stack.stop_app(pipeline, "serve")
        stack.stop_app(pipeline, "processor")
    for name, path in logs.items():
        with path.open("rb") as log:
            log.seek(sizes[name])
            assert b"AUTHORIZATION_FAILED" not in log.read(), f"{name}.log"
