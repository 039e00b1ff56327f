"""Which Kafka login a program gets from the stack's generated passwords."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.settings import Settings

pytestmark = pytest.mark.unit

PASSWORDS = {f"kafka_{p}_password": f"{p}-secret" for p in ("admin", "connect", "processor",
                                                             "reader")}


def _stack_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **given: str) -> Settings:
    # A home whose generated passwords file is missing: only what is given counts.
    for name in list(os.environ):
        if name.startswith("SEATFLOW_"):
            monkeypatch.delenv(name)
    return Settings(home=tmp_path, **PASSWORDS, **given)  # type: ignore[arg-type]


def test_admin_becomes_the_processor_with_the_processors_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = _stack_settings(tmp_path, monkeypatch)
    assert admin.kafka_username == "admin"
    processor = admin.as_principal("processor")
    assert processor.kafka_username == "processor"
    assert processor.kafka_password is not None
    assert processor.kafka_password.get_secret_value() == "processor-secret"
    # The original is left as it was: Dagster's other jobs stay admin.
    assert admin.kafka_password is not None
    assert admin.kafka_password.get_secret_value() == "admin-secret"


def test_a_login_that_is_not_the_stacks_is_left_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = _stack_settings(tmp_path, monkeypatch, kafka_security_protocol="SASL_SSL",
                                kafka_sasl_mechanism="SCRAM-SHA-512",
                                kafka_username="svc-seatflow", kafka_password="cluster-secret")
    assert elsewhere.as_principal("processor") is elsewhere


def test_an_unknown_principal_or_one_without_a_password_is_left_alone_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = _stack_settings(tmp_path, monkeypatch)
    assert admin.as_principal("nobody") is admin
    no_password = admin.model_copy(update={"kafka_processor_password": None})
    assert no_password.as_principal("processor") is no_password


def test_dagsters_processor_runs_log_in_as_the_processor_and_the_registrys_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.orchestration.availability import processor_settings
    from pipelines.processor.supervise import settings_environment

    dagster = _stack_settings(tmp_path, monkeypatch, registry_admin_password="admin-reg",
                              registry_reader_password="reader-reg")
    assert dagster.registry_auth() == ("admin", "admin-reg")
    run = processor_settings(dagster)
    assert run.kafka_username == "processor"
    assert run.registry_auth() == ("reader", "reader-reg")
    # The worker processes it supervises get the same logins, and no registry password: they
    # find the reader's among the stack's generated ones, as the run did.
    env = settings_environment(run)
    assert env["SEATFLOW_KAFKA_USERNAME"] == "processor"
    assert env["SEATFLOW_REGISTRY_USERNAME"] == "reader"
    assert "admin-reg" not in env.values() and "reader-reg" not in env.values()
