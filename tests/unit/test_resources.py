"""The `seatflow` resource: a deployment's Settings, its overrides, its clients; no secret in it."""

from __future__ import annotations

import dagster as dg
import pytest
from pydantic import SecretStr

from pipelines.definitions import defs
from pipelines.orchestration import backfill
from pipelines.orchestration.resources import SeatflowResource
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

ELSEWHERE = SeatflowResource(
    bind_host="10.0.0.5", connect_port=8083, kafka_host="kafka", kafka_port=9092,
    registry_host="registry", registry_port=8080, pg_host="db", pg_port=5432,
    pg_database="tix", pg_app_user="app")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_KAFKA_PORT", "2345")
    monkeypatch.setenv("SEATFLOW_PG_APP_PASSWORD", "from-the-env")


def test_unset_fields_and_the_password_come_from_the_environment(environment: None) -> None:
    settings = SeatflowResource().settings()
    assert settings.kafka_bootstrap == f"{Settings().bind_host}:2345"
    assert settings.pg_app_password.get_secret_value() == "from-the-env"


def test_the_deployments_overrides_win_over_the_environment(environment: None) -> None:
    settings = ELSEWHERE.model_copy().settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.registry_url == "http://registry:8080"
    assert settings.connect_url == "http://10.0.0.5:8083"
    assert settings.pg_dsn() == "host=db port=5432 dbname=tix user=app password=from-the-env"


def test_settings_are_read_once_per_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = SeatflowResource()
    first = resource.settings()
    monkeypatch.setenv("SEATFLOW_KAFKA_PORT", "2345")
    assert resource.settings() is first
    assert SeatflowResource().settings().kafka_port == 2345


def test_the_clients_talk_to_the_deployments_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_CONNECT_PASSWORD", "from-the-env")
    client = ELSEWHERE.model_copy().connect_client(retries=0)
    assert client.base_url == "http://10.0.0.5:8083"
    # Connect's REST credentials come from Settings, never from resource config.
    assert client.session.auth == ("seatflow", "from-the-env")
    assert ELSEWHERE.schema_registry().base_url == "http://registry:8080"


def test_every_field_overrides_a_settings_field_of_its_type_and_none_is_a_secret() -> None:
    for name, field in SeatflowResource.model_fields.items():
        assert name in Settings.model_fields, name
        declared = Settings.model_fields[name].annotation
        assert declared is not SecretStr, name
        assert field.annotation == declared | None, name


def test_a_run_may_override_an_address_but_no_password() -> None:
    job = defs.get_job_def("backfill_event")
    dg.validate_run_config(job, {"resources": {"seatflow": {"config": {"pg_port": 5432}}}})
    with pytest.raises(dg.DagsterInvalidConfigError, match="pg_app_password"):
        dg.validate_run_config(job, {"resources": {"seatflow": {"config": {
            "pg_app_password": "x"}}}})


def test_a_sensor_reaches_the_database_the_resource_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEATFLOW_PG_APP_PASSWORD", "any")
    # Port 9 (discard) is closed on the machines we run on: connection refused at once.
    closed = SeatflowResource(pg_host="127.0.0.1", pg_port=9)
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                      resources={"seatflow": closed})
    result = backfill.events_partitions_sensor(context)
    assert isinstance(result, dg.SensorResult) and result.skip_reason is not None
    assert result.skip_reason.skip_message.startswith("ticketing host unreachable")
    assert '"127.0.0.1", port 9 failed' in result.skip_reason.skip_message
