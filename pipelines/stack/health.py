"""One health check per service; each returns None when healthy, else why not."""

from __future__ import annotations

import socket

import psycopg
import requests

from pipelines.avro import registry_session
from pipelines.connect import connect_session
from pipelines.kafka import clients
from pipelines.settings import Settings, SettingsError
from pipelines.stack.postgres import superuser_dsn

__all__ = ["CHECKS", "DEBEZIUM_POSTGRES", "check", "listening"]

DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"
TIMEOUT_S = 3.0


def postgres(settings: Settings) -> str | None:
    try:
        with psycopg.connect(superuser_dsn(settings), connect_timeout=int(TIMEOUT_S)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None


def listening(host: str, port: int, *, timeout: float = 1.0) -> bool:
    """Something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def controller(settings: Settings) -> str | None:
    """Its listener accepts connections once it has loaded the metadata and leads the quorum
    (it enables request processing then); the broker's own check covers the rest."""
    if listening(settings.bind_host, settings.kafka_controller_port, timeout=TIMEOUT_S):
        return None
    return "controller listener not accepting connections"


def kafka(settings: Settings) -> str | None:
    admin = clients.admin(settings, log_level=0, **{"socket.connection.setup.timeout.ms": 2000})
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
    except Exception as e:  # KafkaException carries librdkafka's reason
        return str(e)
    return None if metadata.brokers else "no broker in metadata"


def registry(settings: Settings) -> str | None:
    """The registry answers its user (basic auth): /users/me names who the login is (anonymous
    when the registry asks for none); a wrong password is refused (401)."""
    try:
        with registry_session(settings) as session:
            r = session.get(f"{settings.registry_url}/apis/registry/v3/users/me",
                            timeout=TIMEOUT_S)
    except requests.RequestException as e:
        return type(e).__name__
    if not r.ok:
        return f"HTTP {r.status_code}"
    auth = settings.registry_auth()
    try:
        user = r.json().get("username")
    except ValueError:
        return "not a JSON answer"
    if auth is not None and user != auth[0]:
        return f"logged in as {user!r}, not {auth[0]!r}"
    return None


def connect(settings: Settings) -> str | None:
    """The REST API answers the REST user (basic auth) and lists Debezium's connector."""
    try:
        session = connect_session(settings, retries=0)
    except SettingsError as e:
        return str(e)
    try:
        with session:
            root = session.get(f"{settings.connect_url}/", timeout=TIMEOUT_S)
            if not root.ok:
                return f"HTTP {root.status_code}"
            plugins = session.get(f"{settings.connect_url}/connector-plugins", timeout=TIMEOUT_S)
    except requests.RequestException as e:
        return type(e).__name__
    if not plugins.ok:
        return f"/connector-plugins: HTTP {plugins.status_code}"
    if not any(p.get("class") == DEBEZIUM_POSTGRES for p in plugins.json()):
        return f"{DEBEZIUM_POSTGRES} not in /connector-plugins"
    return None


# In the stack's start order.
CHECKS = {"postgres": postgres, "controller": controller, "kafka": kafka, "registry": registry,
          "connect": connect}


def check(service: str, settings: Settings) -> str | None:
    return CHECKS[service](settings)
