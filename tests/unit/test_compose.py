"""docker-compose.yml describes the same stack as `seatflow stack up`, safely (no Docker needed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from pipelines.settings import KAFKA_PRINCIPALS, PROJECT_ROOT, REGISTRY_PRINCIPALS, Settings
from pipelines.stack.configs import CONF_TEMPLATES, TEMPLATES_DIR, connect_environment, render

pytestmark = pytest.mark.unit

COMPOSE_DIR = PROJECT_ROOT / "stack" / "compose"
COMPOSE: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
# An exact version: major.minor at least, optionally .patch and a variant (15.17-bookworm).
EXACT_TAG = re.compile(r"^\d+\.\d+(\.\d+)?([.-][A-Za-z0-9][\w.-]*)?$")
ENV_REFERENCE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:\?[^}]*)?\}$")


def _default(field: str) -> Any:
    return Settings.model_fields[field].default


def _tag(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    assert ":" in name and "@" not in name, f"{image}: no tag"
    return name.split(":", 1)[1]


def _pom_property(name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(PROJECT_ROOT / "stack" / "pom.xml").getroot()
    value = root.findtext(f"m:properties/m:{name}", namespaces=ns)
    assert value, name
    return value


def _published(service: str) -> list[tuple[str, int, int]]:
    rows = []
    for port in SERVICES[service].get("ports", []):
        if isinstance(port, dict):  # long syntax
            rows.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        assert len(parts) == 3, f"{service}: {port!r} publishes on every interface"
        rows.append((parts[0], int(parts[1]), int(parts[2])))
    return rows


def test_every_published_port_binds_loopback_only() -> None:
    ports = [p for s in SERVICES for p in _published(s)]
    assert ports
    assert all(ip == "127.0.0.1" for ip, _, _ in ports), ports


def test_published_host_ports_are_the_settings_defaults() -> None:
    host_ports = {s: [host for _, host, _ in _published(s)] for s in SERVICES}
    assert host_ports == {
        "postgres": [_default("pg_port")],
        "controller": [],  # the broker's alone, inside the network
        "kafka": [_default("kafka_port")],
        "kafka-acls": [],
        "registry": [_default("registry_port")],
        "connect": [_default("connect_port")],
        "processor-0": [],
        "processor-1": [],
        "serve": [_default("serve_port")],
    }


def test_every_image_has_an_exact_version_tag() -> None:
    images = [svc["image"] for svc in SERVICES.values()]
    # The base images of the kafka and connect builds; FROM <earlier stage> needs no tag.
    for dockerfile in ("Dockerfile", "app.Dockerfile"):
        stages: set[str] = set()
        for line in (COMPOSE_DIR / dockerfile).read_text().splitlines():
            match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
            if match:
                if match.group(1).lower() not in stages:
                    images.append(match.group(1))
                if match.group(2):
                    stages.add(match.group(2).lower())
    assert len(images) >= 9
    for image in images:
        tag = _tag(image)
        assert tag != "latest" and EXACT_TAG.match(tag), image
    # The images run the versions that stack/pom.xml fetches for the local stack.
    assert SERVICES["registry"]["image"] == (
        f"apicurio/apicurio-registry:{_pom_property('version.apicurio.registry')}")
    assert f"apache/kafka:{_pom_property('version.kafka')}" in images
    assert SERVICES["postgres"]["image"].startswith("postgres:15.")


def _walk(node: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in _walk(v, str(k))]
    if isinstance(node, list):
        return [pair for item in node for pair in _walk(item, key)]
    return [(key, node)]


def test_no_password_is_written_in_the_file() -> None:
    pairs = _walk(COMPOSE)
    secret_keys = [(k, v) for k, v in pairs if "PASSWORD" in k.upper()]
    assert len(secret_keys) >= 5
    for key, value in secret_keys:
        assert isinstance(value, str) and ENV_REFERENCE.match(value), f"{key}: {value!r}"
        assert ":?" in value, f"{key} must fail loudly when unset"
    fields = [f for f in Settings.model_fields if f.endswith("_password")]
    # No known password anywhere: none has a default (the local stack generates its own).
    assert fields and all(_default(f) is None or not _default(f).get_secret_value()
                          for f in fields)


# The REST API's basic auth credentials, for start.sh's users file and the healthcheck only.
REST_CREDENTIALS = {"CONNECT_REST_USER", "CONNECT_REST_PASSWORD"}
# The worker's own Kafka login, for start.sh's secrets file only.
KAFKA_LOGIN = {"KAFKA_CONNECT_PASSWORD"}


def test_connect_worker_gets_exactly_the_local_connect_environment() -> None:
    env = SERVICES["connect"]["environment"]
    assert set(env) - REST_CREDENTIALS - KAFKA_LOGIN == set(connect_environment(
        Settings(pg_debezium_password="x", registry_writer_password="y")))
    assert env["SEATFLOW_PG_HOST"] == "postgres"
    assert env["SEATFLOW_PG_PORT"] == "5432"
    assert env["SEATFLOW_REGISTRY_URL"] == "http://registry:8080/apis/registry/v2"


def test_connect_rest_asks_for_the_settings_credentials() -> None:
    env = SERVICES["connect"]["environment"]
    assert set(env) >= REST_CREDENTIALS
    # Outside the worker's ${env:...} allow-list (^SEATFLOW_): no connector config can read them.
    allowlist = _conf_settings("connect-distributed.properties")[
        "config.providers.env.param.allowlist.pattern"].replace("$$", "$")
    assert not any(re.match(allowlist, name) for name in REST_CREDENTIALS)
    assert env["CONNECT_REST_USER"] == f"${{SEATFLOW_CONNECT_USER:-{_default('connect_user')}}}"
    assert env["CONNECT_REST_PASSWORD"].startswith("${SEATFLOW_CONNECT_PASSWORD:?")
    probe = " ".join(SERVICES["connect"]["healthcheck"]["test"])
    assert "Authorization: Basic" in probe and "$$CONNECT_REST_PASSWORD" in probe
    start = (COMPOSE_DIR / "start.sh").read_text()
    assert "-Djava.security.auth.login.config=$CONF/connect-jaas.conf" in start
    assert '"$SECRETS/connect-users.properties"' in start and "unset CONNECT_REST_PASSWORD" in start
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert "render.sh /templates/connect-jaas.conf > /out/conf/connect-jaas.conf" in dockerfile
    example = dotenv_values(COMPOSE_DIR / ".env.example")
    assert example.get("SEATFLOW_CONNECT_PASSWORD")


def test_two_processor_slots_reach_the_services_by_name_with_settings_variables() -> None:
    slots = {name: svc for name, svc in SERVICES.items() if name.startswith("processor-")}
    assert [svc["command"] for svc in slots.values()] == [["--slot", "0"], ["--slot", "1"]]
    fields = {f"SEATFLOW_{f.upper()}" for f in Settings.model_fields}
    for name, svc in slots.items():
        env = svc["environment"]
        assert set(env) <= fields, (name, set(env) - fields)
        assert (env["SEATFLOW_KAFKA_HOST"], env["SEATFLOW_REGISTRY_HOST"],
                env["SEATFLOW_PG_HOST"]) == ("kafka", "registry", "postgres")
        # Values compose takes from .env ("${...}") are left to their defaults.
        given = {k.removeprefix("SEATFLOW_").lower(): v for k, v in env.items()
                 if not str(v).startswith("${")}
        settings = Settings(**{"pg_app_password": "from .env", **given})
        assert settings.kafka_bootstrap == "kafka:9092", name
        assert settings.ccompat_url.startswith("http://registry:8080/"), name
        assert "host=postgres" in settings.pg_dsn() and "port=5432" in settings.pg_dsn(), name


# Services that run once and exit: waited for by their exit, not a healthcheck.
ONE_SHOTS = {"kafka-acls"}


def test_services_have_healthchecks_and_wait_for_healthy_dependencies() -> None:
    for name, svc in SERVICES.items():
        assert name in ONE_SHOTS or svc["healthcheck"]["test"], name
        for dep, cond in svc.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dep in ONE_SHOTS else "service_healthy"
            assert dep in SERVICES and cond == {"condition": wanted}, name
    assert set(SERVICES["connect"]["depends_on"]) == {"kafka", "registry", "kafka-acls"}
    assert set(SERVICES["registry"]["depends_on"]) == {"postgres"}
    volumes = set(COMPOSE["volumes"])
    for svc in ("postgres", "kafka"):
        named = {v.split(":")[0] for v in SERVICES[svc]["volumes"]}
        assert named & volumes, svc


def test_every_service_is_restarted_after_a_crash_but_not_after_a_stop() -> None:
    # As the local stack's supervisord: a crashed service comes back by itself; one stopped on
    # purpose (`docker compose stop`) stays stopped.
    for name, svc in SERVICES.items():
        assert svc.get("restart") in ("unless-stopped", "on-failure"), name


def _props(text: str) -> dict[str, str]:
    """key = value lines of a .properties or postgresql.conf file; a repeated key fails."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    pairs = {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in lines)}
    assert len(pairs) == len(lines), "a key appears twice"
    return pairs


def _conf_settings(name: str) -> dict[str, str]:
    return _props((TEMPLATES_DIR / name).read_text())


def test_registry_environment_carries_every_key_of_the_local_properties() -> None:
    env = SERVICES["registry"]["environment"]
    for key in _conf_settings("apicurio-registry.properties"):
        assert re.sub(r"[^A-Za-z0-9]", "_", key).upper() in env, key


def test_postgres_runs_with_the_local_settings() -> None:
    command = SERVICES["postgres"]["command"]
    assert command[0] == "postgres"
    options = dict(value.partition("=")[::2] for flag, value in pairwise(command) if flag == "-c")
    image_settled = {"listen_addresses", "port", "unix_socket_directories"}
    for key, value in _conf_settings("postgresql.conf").items():
        if key not in image_settled:
            assert options.get(key) == value.strip("'"), key


PLACEHOLDERS = {
    "BIND_HOST": "0.0.0.0", "PG_PORT": "5432", "PG_SOCKET_DIR": "/run/pg", "PG_OS_USER": "pg",
    "KAFKA_PORT": "9092", "KAFKA_CONTROLLER_PORT": "9093", "KAFKA_DATA_DIR": "/data",
    "KAFKA_CONTROLLER_DATA_DIR": "/controller",
    "CONNECT_PORT": "8083", "PLUGIN_PATH": "/plugins", "SECRETS_DIR": "/secrets",
    "CONNECTOR_SECRETS_DIR": "/secrets/connectors", "KAFKA_SECRETS_DIR": "/kafka-secrets",
    "REGISTRY_PORT": "8080", "REGISTRY_MANAGEMENT_PORT": "9000", "REGISTRY_DATABASE": "reg",
    "REGISTRY_USER": "reg", "REGISTRY_PASSWORD": "a$b&c\\1/d", "PG_SUPERUSER": "postgres",
    "RUN_AS_USER": "me",
}


def _render_sh(*args: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = ["sh", str(COMPOSE_DIR / "render.sh"), *map(str, args)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.skipif(not (shutil.which("sh") and shutil.which("awk")), reason="needs sh and awk")
def test_render_sh_renders_templates_as_python_does() -> None:
    for name in CONF_TEMPLATES:
        done = _render_sh(TEMPLATES_DIR / name, env=PLACEHOLDERS)
        assert done.returncode == 0, done.stderr
        assert done.stdout == render((TEMPLATES_DIR / name).read_text(), PLACEHOLDERS), name
    missing = _render_sh(TEMPLATES_DIR / "server.properties", env={})
    assert missing.returncode != 0 and "KAFKA_DATA_DIR" in missing.stderr


@pytest.mark.skipif(not (shutil.which("sh") and shutil.which("awk")), reason="needs sh and awk")
def test_the_image_build_gives_every_placeholder_of_the_kafka_templates_it_renders() -> None:
    # The conf stage of stack/compose/Dockerfile renders the Kafka and Connect templates with
    # the values it exports; one it lacks fails the image build, which nothing here runs.
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    exported = dockerfile.split("export ", 1)[1].split(";", 1)[0]
    values = dict(pair.split("=", 1) for pair in exported.split() if pair != "\\")
    rendered = re.findall(r"render\.sh /templates/(\S+)", dockerfile)
    assert "connect-distributed.properties" in rendered
    for name in rendered:
        done = _render_sh(TEMPLATES_DIR / name, env=values)
        assert done.returncode == 0, (name, done.stderr)


@pytest.mark.skipif(not (shutil.which("sh") and shutil.which("awk")), reason="needs sh and awk")
@pytest.mark.parametrize("name", ["server.properties", "connect-distributed.properties"])
def test_render_sh_overrides_replace_keys_in_place(name: str) -> None:
    overrides_file = COMPOSE_DIR / name.replace(".properties", ".overrides.properties")
    done = _render_sh(TEMPLATES_DIR / name, overrides_file, env=PLACEHOLDERS)
    assert done.returncode == 0, done.stderr
    plain = _props(render((TEMPLATES_DIR / name).read_text(), PLACEHOLDERS))
    overrides = _props(overrides_file.read_text())
    # Besides the template's keys, only the login of a listener the template lacks (the
    # broker's HOST listener).
    assert overrides and {k for k in overrides if not k.startswith("listener.name.host.")} <= set(
        plain)
    assert _props(done.stdout) == {**plain, **overrides}


def test_kafka_asks_every_container_to_log_in_as_its_principal() -> None:
    controller = SERVICES["controller"]["environment"]
    assert {f"KAFKA_{p.upper()}_PASSWORD" for p in KAFKA_PRINCIPALS} <= set(controller)
    assert SERVICES["kafka"]["environment"]["KAFKA_ADMIN_PASSWORD"] == controller[
        "KAFKA_ADMIN_PASSWORD"]
    assert "--command-config" in SERVICES["kafka"]["healthcheck"]["test"]
    logins = {"processor-0": "processor", "processor-1": "processor", "serve": "reader"}
    for name, principal in logins.items():
        env = SERVICES[name]["environment"]
        assert env["SEATFLOW_KAFKA_USERNAME"] == principal, name
        assert f"SEATFLOW_KAFKA_{principal.upper()}_PASSWORD" in env, name
        assert not any("ADMIN" in k for k in env), name
    acls = SERVICES["kafka-acls"]
    assert acls["entrypoint"] == ["python", "-m", "pipelines.kafka.acls"]
    assert "SEATFLOW_KAFKA_USERNAME" not in acls["environment"]  # admin, the default
    # The worker's login is outside its ${env:...} allow-list (^SEATFLOW_).
    allowlist = _conf_settings("connect-distributed.properties")[
        "config.providers.env.param.allowlist.pattern"].replace("$$", "$")
    assert not any(re.match(allowlist, name) for name in KAFKA_LOGIN)
    example = dotenv_values(COMPOSE_DIR / ".env.example")
    assert {f"SEATFLOW_KAFKA_{p.upper()}_PASSWORD" for p in KAFKA_PRINCIPALS} <= set(example)


def test_the_registry_asks_every_container_to_log_in_as_its_user() -> None:
    registry = SERVICES["registry"]["environment"]
    assert registry["QUARKUS_HTTP_AUTH_BASIC"] == "true"
    assert registry["APICURIO_AUTH_ANONYMOUS_READ_ACCESS_ENABLED"] == "false"
    for user, role in REGISTRY_PRINCIPALS.items():
        password = registry[f"QUARKUS_SECURITY_USERS_EMBEDDED_USERS_{user.upper()}"]
        assert password.startswith(f"${{SEATFLOW_REGISTRY_{user.upper()}_PASSWORD:?"), user
        assert registry[f"QUARKUS_SECURITY_USERS_EMBEDDED_ROLES_{user.upper()}"] == role
    connect = SERVICES["connect"]["environment"]
    assert connect["SEATFLOW_REGISTRY_WRITER_USER"] == "writer"
    assert connect["SEATFLOW_REGISTRY_WRITER_PASSWORD"].startswith(
        "${SEATFLOW_REGISTRY_WRITER_PASSWORD:?")
    for name in ("processor-0", "processor-1", "serve"):
        env = SERVICES[name]["environment"]
        assert env["SEATFLOW_REGISTRY_USERNAME"] == "reader", name
        assert "SEATFLOW_REGISTRY_READER_PASSWORD" in env, name
        assert not any("REGISTRY_ADMIN" in k or "REGISTRY_WRITER" in k for k in env), name
    example = dotenv_values(COMPOSE_DIR / ".env.example")
    assert {f"SEATFLOW_REGISTRY_{u.upper()}_PASSWORD" for u in REGISTRY_PRINCIPALS} <= set(example)
