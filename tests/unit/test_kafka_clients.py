"""Every Kafka client is built from Settings: the brokers and the security settings in one
place, each caller's own settings on top, and the password in no repr a log line could show."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pipelines.kafka import clients
from pipelines.processor.supervise import settings_environment
from pipelines.settings import Settings, SettingsError

pytestmark = pytest.mark.unit

PASSWORD = "pr0cessor-s3cret"


def kafka_settings(**security: Any) -> Settings:
    """Settings whose Kafka fields are all given here, none from the environment or a file."""
    fields: dict[str, Any] = {"kafka_security_protocol": "PLAINTEXT", "kafka_sasl_mechanism": None,
                              "kafka_username": None, "kafka_password": None,
                              "kafka_ssl_ca_location": None}
    return Settings(kafka_host="kafka", kafka_port=9092, **{**fields, **security})


def scram(**more: Any) -> Settings:
    return kafka_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                          kafka_username="processor", kafka_password=SecretStr(PASSWORD),
                          kafka_ssl_ca_location=Path("/etc/seatflow/kafka-ca.pem"), **more)


def test_without_security_settings_a_client_gets_the_brokers_alone() -> None:
    assert clients.client_config(kafka_settings()) == {"bootstrap.servers": "kafka:9092"}


def test_security_settings_are_added_only_when_set() -> None:
    assert clients.client_config(scram()) == {
        "bootstrap.servers": "kafka:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "processor",
        "sasl.password": PASSWORD,
        "ssl.ca.location": "/etc/seatflow/kafka-ca.pem",
    }
    tls_only = kafka_settings(kafka_security_protocol="SSL")
    assert clients.client_config(tls_only) == {"bootstrap.servers": "kafka:9092",
                                               "security.protocol": "SSL"}


def test_a_user_without_a_password_is_refused_naming_the_variable() -> None:
    settings = kafka_settings(kafka_security_protocol="SASL_SSL", kafka_username="reader")
    with pytest.raises(SettingsError, match="SEATFLOW_KAFKA_PASSWORD"):
        clients.client_config(settings)


def test_a_caller_adds_its_own_settings_but_not_how_to_connect() -> None:
    config = clients.client_config(scram(), **{"isolation.level": "read_committed",
                                               "linger.ms": 5})
    assert (config["isolation.level"], config["linger.ms"]) == ("read_committed", 5)
    assert config["sasl.username"] == "processor"
    for key in ("bootstrap.servers", "security.protocol", "sasl.username", "ssl.ca.location"):
        with pytest.raises(ValueError, match=key):
            clients.client_config(scram(), **{key: "elsewhere"})


def test_the_password_is_in_no_repr_or_log_line(caplog: pytest.LogCaptureFixture) -> None:
    settings = scram()
    config = clients.client_config(settings, **{"transactional.id": "seatflow-0"})
    assert config["sasl.password"] == PASSWORD  # librdkafka is given it
    shown = [repr(config), str(config), f"{config}", repr(settings), str(settings),
             settings.model_dump_json()]
    assert all(PASSWORD not in text for text in shown), shown
    assert "processor" in repr(config)  # only the secret is masked
    with caplog.at_level(logging.INFO):
        logging.getLogger("seatflow.test").info("client config %s (%r)", config, config)
    assert caplog.records and PASSWORD not in caplog.text


def test_each_factory_builds_its_client_from_the_same_base(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str, dict[str, Any]]] = []
    for kind in ("Consumer", "Producer", "AdminClient"):
        monkeypatch.setattr(clients, kind, lambda config, kind=kind: built.append((kind, config)))
    settings = scram()
    clients.consumer(settings, group_id="seatflow-processor", **{"enable.auto.commit": False})
    clients.consumer(settings)
    clients.producer(settings, **{"transactional.id": "seatflow-0"})
    clients.admin(settings, log_level=4)
    base = clients.client_config(settings)
    assert [kind for kind, _ in built] == ["Consumer", "Consumer", "Producer", "AdminClient"]
    assert built[0][1] == {**base, "group.id": "seatflow-processor", "enable.auto.commit": False}
    assert built[1][1] == base  # no group unless asked for
    assert built[2][1] == {**base, "transactional.id": "seatflow-0"}
    assert built[3][1] == {**base, "log_level": 4}


def test_a_supervised_worker_is_given_the_kafka_login_through_its_environment() -> None:
    env = settings_environment(scram())
    assert env["SEATFLOW_KAFKA_USERNAME"] == "processor"
    assert env["SEATFLOW_KAFKA_PASSWORD"] == PASSWORD
    assert env["SEATFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert "SEATFLOW_KAFKA_PASSWORD" not in settings_environment(kafka_settings())
