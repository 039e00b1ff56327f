"""Kafka Connect's REST API on the real stack: basic auth on every request, the project's clients
with Settings' credentials, a connector aimed at another host refused before Connect sees it,
and no generated password in what the REST API answers about the deployed connector."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.connect import (
    CONNECTORS_DIR,
    ConnectAuthError,
    ConnectClient,
    ConnectorRefusedError,
    TicketingHost,
    apply_connector,
    connect_session,
    load_connector_file,
    load_connectors,
)
from pipelines.settings import GENERATED_SECRETS, Settings, read_generated_secrets
from pipelines.stack import health
from pipelines.stack.layout import StackLayout
from pipelines.stack.stack import CONNECT_USERS_FILE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_a_request_without_credentials_is_refused(running_stack: Settings) -> None:
    for path in ("/connectors", "/", "/connector-plugins"):
        response = requests.get(f"{running_stack.connect_url}{path}", timeout=10)
        assert response.status_code == 401, (path, response.status_code, response.text)


def test_a_wrong_password_is_refused(running_stack: Settings) -> None:
    url = f"{running_stack.connect_url}/connectors"
    right = running_stack.password("connect_password")
    for user, password in ((running_stack.connect_user, right + "x"),
                           (running_stack.connect_user, ""),
                           ("someone-else", right)):
        response = requests.get(url, auth=(user, password), timeout=10)
        assert response.status_code == 401, (user, response.status_code)
    wrong = running_stack.model_copy(update={"connect_password": SecretStr("not-the-password")})
    with pytest.raises(ConnectAuthError, match="401"):
        ConnectClient.from_settings(wrong, retries=0).connectors()
    assert health.connect(wrong) == "HTTP 401"


def test_the_projects_clients_send_the_settings_credentials(running_stack: Settings) -> None:
    settings = running_stack
    assert isinstance(ConnectClient.from_settings(settings).connectors(), dict)
    with connect_session(settings) as session:
        assert session.get(f"{settings.connect_url}/connectors", timeout=10).status_code == 200
    assert health.connect(settings) is None
    result = CliRunner().invoke(app, ["connectors", "plan"])
    assert result.exit_code == 0, result.output


def test_the_users_file_is_private(running_stack: Settings) -> None:
    layout = StackLayout.of(running_stack)
    users = layout.secrets / CONNECT_USERS_FILE
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert stat.S_IMODE(layout.secrets.stat().st_mode) == 0o700
    # Never among the rendered configs or the logs.
    password = running_stack.password("connect_password")
    for folder in (layout.conf, layout.logs):
        for path in folder.glob("*"):
            if path.is_file():
                assert password not in path.read_text(errors="replace"), path


def _elsewhere(folder: Path, run: str, **config: str) -> str:
    """A copy of the shipped connector under a new name, aimed at another database."""
    base = load_connector_file(CONNECTORS_DIR / "ticketing-host.json").config
    name = f"seatflow-elsewhere-{run}"
    doc = {"name": name, "config": {**base, "slot.name": f"elsewhere_{run}",
                                    "publication.name": f"elsewhere_{run}",
                                    "offsets.storage.topic": f"_connect-offsets-elsewhere-{run}",
                                    **config}}
    (folder / f"{name}.json").write_text(json.dumps(doc))
    return name


# Loopback addresses only: were the refusal to fail, Connect's validation would try these.
@pytest.mark.parametrize("config", [{"database.hostname": "127.0.0.2"},
                                    {"database.hostname": "127.0.0.1", "database.port": "1"}])
def test_a_connector_aimed_at_another_host_is_refused_before_it_is_applied(
        running_stack: Settings, tmp_path: Path, config: dict[str, str]) -> None:
    settings = running_stack
    run = uuid.uuid4().hex[:8]
    name = _elsewhere(tmp_path, run, **config)
    client = ConnectClient.from_settings(settings)
    for command in ("apply", "validate"):
        result = CliRunner().invoke(app, ["connectors", command, "--dir", str(tmp_path)])
        assert result.exit_code == 1, (command, result.output)
        assert name in " ".join(result.output.split()), result.output
    [file] = load_connectors(tmp_path)
    with pytest.raises(ConnectorRefusedError, match=f"{name}: refused, nothing applied"):
        apply_connector(client, file, ticketing=TicketingHost.of(settings))
    # Nothing was PUT.
    with connect_session(settings) as session:
        assert session.get(f"{settings.connect_url}/connectors/{name}", timeout=10).status_code == 404
    assert client.connector_config(name) is None


def test_no_rest_answer_about_the_deployed_connector_holds_a_password(pipeline: Settings) -> None:
    settings = pipeline
    name = settings.connector_name
    secrets = {*read_generated_secrets(settings.home).values(),
               *(settings.password(field) for field in GENERATED_SECRETS)}
    assert len(secrets) >= len(GENERATED_SECRETS)
    base = f"{settings.connect_url}/connectors"
    with connect_session(settings) as session:
        config = session.get(f"{base}/{name}/config", timeout=10)
        assert config.status_code == 200
        # What the file says, references unresolved.
        assert config.json()["database.password"] == "${env:SEATFLOW_DEBEZIUM_PASSWORD}"
        for path in (f"/{name}/config", f"/{name}", f"/{name}/status", f"/{name}/tasks",
                     f"/{name}/topics", f"/{name}/offsets", "?expand=info&expand=status"):
            response = session.get(f"{base}{path}", timeout=10)
            assert response.status_code == 200, (path, response.status_code)
            leaked = [s for s in secrets if s in response.text]
            assert not leaked, f"GET /connectors{path} holds {len(leaked)} generated password(s)"


def test_a_connector_config_cannot_read_the_stacks_other_secrets(running_stack: Settings) -> None:
    # Connect's file provider may read only its own Kafka login and the connectors' folder: not
    # the generated passwords (Kafka's admin among them), which sit in the folder above.
    # Validation resolves what it may and leaves the rest literal (stack/NOTES.md), and
    # Debezium's validation logs in to the ticketing host: the right password, read from
    # passwords.env, would pass it.
    layout = StackLayout.of(running_stack)
    host, port = running_stack.pg_endpoint
    config = {"connector.class": "io.debezium.connector.postgresql.PostgresConnector",
              "name": f"probe-{uuid.uuid4().hex[:8]}", "topic.prefix": "probe",
              "database.hostname": host, "database.port": str(port),
              "database.dbname": running_stack.pg_database,
              "database.user": running_stack.pg_debezium_user}
    passwords = layout.secrets / "passwords.env"
    assert passwords.is_file()

    def errors(password: str) -> int:
        with connect_session(running_stack) as session:
            response = session.put(
                f"{running_stack.connect_url}/connector-plugins/PostgresConnector/config/validate",
                json={**config, "database.password": password}, timeout=60)
        assert response.status_code == 200, response.text
        assert running_stack.password("kafka_admin_password") not in response.text
        return int(response.json()["error_count"])

    # The same password through the environment, which connectors may read: it logs in.
    assert errors("${env:SEATFLOW_DEBEZIUM_PASSWORD}") == 0
    assert errors(f"${{file:{passwords}:SEATFLOW_PG_DEBEZIUM_PASSWORD}}") >= 1
    # A connector's own file in the connectors' folder: read, so it logs in.
    own = layout.connector_secrets / f"{config['name']}.properties"
    own.write_text(f"password={running_stack.pg_debezium_password.get_secret_value()}\n")
    try:
        assert errors(f"${{file:{own}:password}}") == 0
    finally:
        own.unlink()
