"""Kafka Connect's REST API with basic auth, without a stack: the generated password, the files
the worker reads, and the clients that send the credentials (against a loopback stand-in)."""

from __future__ import annotations

import base64
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dotenv import dotenv_values
from pydantic import SecretStr

from pipelines.connect import ConnectAuthError, ConnectClient, connect_session
from pipelines.settings import GENERATED_SECRETS, Settings, SettingsError, generated_secrets_file
from pipelines.stack import health
from pipelines.stack.configs import (
    TEMPLATES_DIR,
    connect_environment,
    java_command,
    placeholders,
    render,
)
from pipelines.stack.layout import StackLayout
from pipelines.stack.secrets import ensure_secrets
from pipelines.stack.stack import CONNECT_USERS_FILE, _write_secrets

pytestmark = pytest.mark.unit

DEBEZIUM = "io.debezium.connector.postgresql.PostgresConnector"


@pytest.fixture
def no_seatflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*GENERATED_SECRETS, "home", "connect_user"):
        monkeypatch.delenv(f"SEATFLOW_{name.upper()}", raising=False)


def _properties(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines() if line)
    return {k: v for k, _, v in pairs}


def test_the_connect_password_is_generated_like_the_others(
        tmp_path: Path, no_seatflow_env: None) -> None:
    assert "connect_password" in GENERATED_SECRETS
    # No default: before the first `up` there is none, and the message says where it comes from.
    with pytest.raises(SettingsError, match=r"SEATFLOW_CONNECT_PASSWORD has no value.*stack up"):
        Settings(home=tmp_path).password("connect_password")
    with pytest.raises(SettingsError, match="SEATFLOW_CONNECT_PASSWORD"):
        ConnectClient.from_settings(Settings(home=tmp_path))
    # A stack from before gets one at its next `up`; its other passwords are kept.
    path = generated_secrets_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("SEATFLOW_PG_APP_PASSWORD=a\nSEATFLOW_PG_DEBEZIUM_PASSWORD=b\n"
                    "SEATFLOW_PG_REGISTRY_PASSWORD=c\n")
    assert "connect_password" in ensure_secrets(Settings(home=tmp_path))
    values = dotenv_values(path)
    assert values["SEATFLOW_PG_APP_PASSWORD"] == "a"
    password = values["SEATFLOW_CONNECT_PASSWORD"]
    assert password and len(password) >= 40
    assert Settings(home=tmp_path).password("connect_password") == password


def test_the_users_file_is_private_and_holds_the_user_and_password(
        tmp_path: Path, no_seatflow_env: None) -> None:
    settings = Settings(home=tmp_path, pg_debezium_password="d", connect_password="pw")
    layout = StackLayout.of(settings)
    _write_secrets(settings, layout)
    users = layout.secrets / CONNECT_USERS_FILE
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert stat.S_IMODE(layout.secrets.stat().st_mode) == 0o700
    assert _properties(users) == {"seatflow": "pw"}
    # A given password with characters that java.util.Properties reads as syntax is escaped.
    _write_secrets(settings.model_copy(update={"connect_password": SecretStr(" a\\b")}), layout)
    assert users.read_text() == "seatflow=\\ a\\\\b\n"


def test_the_worker_logs_rest_users_in_against_that_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, pg_registry_password="r")
    layout = StackLayout.of(settings)
    jaas = render((TEMPLATES_DIR / "connect-jaas.conf").read_text(),
                  placeholders(settings, layout))
    assert "KafkaConnect {" in jaas
    assert ("org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required"
            in jaas)
    assert f'file="{layout.secrets / CONNECT_USERS_FILE}";' in jaas
    command = java_command(Path("/usr/bin/java"), layout, "connect")
    assert f"-Djava.security.auth.login.config={layout.conf / 'connect-jaas.conf'}" in command
    worker = (TEMPLATES_DIR / "connect-distributed.properties").read_text().splitlines()
    assert ("rest.extension.classes=org.apache.kafka.connect.rest.basic.auth.extension."
            "BasicAuthSecurityRestExtension") in worker
    assert "connector.client.config.override.policy=None" in worker


def test_the_rest_password_is_not_in_the_workers_environment() -> None:
    # Connector configs read SEATFLOW_* variables: the REST password must not be one of them.
    settings = Settings(pg_debezium_password="d", connect_password="secret-rest-password",
                        registry_writer_password="w")
    assert "secret-rest-password" not in connect_environment(settings).values()


class _Connect(BaseHTTPRequestHandler):
    """Answers like Connect with basic auth: 401 unless user:password match."""

    expected = "Basic " + base64.b64encode(b"seatflow:right").decode()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self._answer(401, b'{"error_code":401,"message":"Request failed authentication"}')
        elif self.path == "/connector-plugins":
            self._answer(200, b'[{"class":"' + DEBEZIUM.encode() + b'"}]')
        elif self.path.startswith("/connectors/"):
            self._answer(404, b'{"error_code":404,"message":"not found"}')
        else:
            self._answer(200, b'{"version":"4.3.1"}')

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def connect_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Connect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _settings(port: int, password: str) -> Settings:
    return Settings(bind_host="127.0.0.1", connect_port=port, connect_password=password)


def test_the_client_and_the_session_send_the_settings_credentials(connect_port: int) -> None:
    settings = _settings(connect_port, "right")
    assert ConnectClient.from_settings(settings, retries=0).connector_config("x") is None
    with connect_session(settings, retries=0) as session:
        assert session.get(f"{settings.connect_url}/", timeout=5).status_code == 200
    assert health.connect(settings) is None


def test_a_refused_password_says_which_settings_to_check(connect_port: int) -> None:
    settings = _settings(connect_port, "wrong")
    with pytest.raises(ConnectAuthError, match=r"-> 401: Kafka Connect at .* refused the REST "
                                               r"user 'seatflow'; check SEATFLOW_CONNECT_USER"):
        ConnectClient.from_settings(settings, retries=0).connector_config("x")
    assert health.connect(settings) == "HTTP 401"
    with pytest.raises(ConnectAuthError, match="without credentials"):
        ConnectClient(settings.connect_url, retries=0).connector_config("x")
