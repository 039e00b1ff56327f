"""The registry's logins: the users file's digest lines, the login each client takes from
Settings, and what the stack renders for the registry, Connect and the supervised programs."""

from __future__ import annotations

import configparser
import stat
from pathlib import Path

import pytest

from pipelines.avro import registry_client, registry_session
from pipelines.avro.schemas import SchemaRegistry
from pipelines.connect import CONNECTORS_DIR, load_connector_file
from pipelines.settings import GENERATED_SECRETS, REGISTRY_PRINCIPALS, Settings
from pipelines.stack.configs import (
    TEMPLATES_DIR,
    connect_environment,
    java_command,
    supervisord_conf,
)
from pipelines.stack.errors import StackError
from pipelines.stack.layout import StackLayout
from pipelines.stack.registry import digest, users_file, users_properties, write_registry_users
from pipelines.stack.secrets import ensure_secrets, with_generated_secrets

pytestmark = pytest.mark.unit

PASSWORDS = {"registry_admin_password": "adminpw", "registry_writer_password": "writerpw",
             "registry_reader_password": "readerpw"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*GENERATED_SECRETS, "registry_username", "registry_password", "home"):
        monkeypatch.delenv(f"SEATFLOW_{name.upper()}", raising=False)


def _props(text: str) -> dict[str, str]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


def test_the_digest_is_what_the_shipped_registry_accepted() -> None:
    # HEX(MD5(user:realm:password)) with the realm the build fixes ("Quarkus"): this value let
    # admin/adminpw in to Apicurio 3.3.3 (stack/NOTES.md, 2026-12-02).
    assert digest("admin", "adminpw") == "853f63de8e09e13adb13df4255e24472"
    assert digest("admin", "adminpw", realm="seatflow") != digest("admin", "adminpw")


def test_the_users_file_holds_digests_and_roles_never_a_password() -> None:
    text = users_properties({"admin": "adminpw", "writer": "writerpw", "reader": "readerpw"})
    props = _props(text)
    prefix = "quarkus.security.users.embedded"
    assert props[f"{prefix}.plain-text"] == "false"
    assert props[f"{prefix}.algorithm"] == "digest-md5"
    # realm-name is fixed by the build: set at runtime, Quarkus only warns.
    assert f"{prefix}.realm-name" not in props
    for user, role in REGISTRY_PRINCIPALS.items():
        assert props[f"{prefix}.users.{user}"] == digest(user, f"{user}pw")
        assert props[f"{prefix}.roles.{user}"] == role
    assert not any(p in text for p in ("adminpw", "writerpw", "readerpw"))


@pytest.mark.parametrize("passwords", [{"someone": "x"}, {"admin": ""}])
def test_the_users_file_refuses_an_unknown_user_or_an_empty_password(
        passwords: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"someone|no password"):
        users_properties(passwords)


def test_the_roles_are_least_privilege() -> None:
    assert REGISTRY_PRINCIPALS == {"admin": "sr-admin", "writer": "sr-developer",
                                   "reader": "sr-readonly"}
    assert {f"registry_{u}_password" for u in REGISTRY_PRINCIPALS} <= set(GENERATED_SECRETS)


def test_clients_log_in_as_admin_by_default_and_as_the_user_named(clean_env: None,
                                                                   tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, **PASSWORDS)
    assert settings.registry_auth() == ("admin", "adminpw")
    reader = Settings(home=tmp_path, registry_username="reader", **PASSWORDS)
    assert reader.registry_auth() == ("reader", "readerpw")
    given = Settings(home=tmp_path, registry_username="ops", registry_password="given")
    assert given.registry_auth() == ("ops", "given")
    # A registry elsewhere that asks for no login: none is sent.
    assert Settings(home=tmp_path).registry_auth() is None
    # deploy registers as the writer, unless the settings name a user themselves.
    assert settings.registry_login_as("writer").registry_auth() == ("writer", "writerpw")
    assert reader.registry_login_as("writer").registry_auth() == ("reader", "readerpw")
    assert given.registry_login_as("writer").registry_auth() == ("ops", "given")


def test_every_client_is_built_with_the_login(clean_env: None, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, registry_username="reader", **PASSWORDS)
    assert registry_client(settings)._rest_client.auth == ("reader", "readerpw")
    assert registry_session(settings).auth == ("reader", "readerpw")
    registry = SchemaRegistry.from_settings(settings)
    assert registry.client._rest_client.auth == ("reader", "readerpw")
    assert registry.session.auth == ("reader", "readerpw")
    assert registry_client(Settings(home=tmp_path))._rest_client.auth is None


def test_an_old_home_gets_the_registry_passwords_at_the_next_up(clean_env: None,
                                                                tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    ensure_secrets(settings)
    path = tmp_path / "secrets" / "passwords.env"
    kept = [ln for ln in path.read_text().splitlines() if "SEATFLOW_REGISTRY_" not in ln
            or "PG_REGISTRY" in ln]
    path.write_text("\n".join(kept) + "\n")
    assert sorted(ensure_secrets(settings)) == sorted(f"registry_{u}_password"
                                                      for u in REGISTRY_PRINCIPALS)
    assert with_generated_secrets(settings).registry_auth() is not None


def test_up_writes_the_users_file_privately_out_of_connects_reach(clean_env: None,
                                                                  tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, **PASSWORDS)
    layout = StackLayout.of(settings)
    path = write_registry_users(settings, layout)
    assert path == users_file(layout)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.is_relative_to(layout.secrets)  # connector configs may read files there
    assert "adminpw" not in path.read_text()
    command = java_command(Path("/opt/jdk/bin/java"), layout, "registry")
    [locations] = [a for a in command if a.startswith("-Dquarkus.config.locations=")]
    assert locations.split("=", 1)[1].split(",") == [
        str(layout.conf / "apicurio-registry.properties"), str(path)]


@pytest.mark.parametrize("password", ["a:b", "a b", 'a"b'])
def test_a_password_basic_auth_cannot_carry_is_refused(clean_env: None, tmp_path: Path,
                                                       password: str) -> None:
    settings = Settings(home=tmp_path, **{**PASSWORDS, "registry_writer_password": password})
    with pytest.raises(StackError, match="SEATFLOW_REGISTRY_WRITER_PASSWORD"):
        write_registry_users(settings, StackLayout.of(settings))


def test_the_registry_config_asks_for_logins_and_refuses_anonymous_reads() -> None:
    props = _props((TEMPLATES_DIR / "apicurio-registry.properties").read_text())
    assert props["quarkus.http.auth.basic"] == "true"
    assert props["apicurio.authn.mechanism.priority"] == "basic"
    assert props["apicurio.auth.role-based-authorization"] == "true"
    assert props["apicurio.auth.role-source"] == "token"
    assert props["apicurio.auth.anonymous-read-access.enabled"] == "false"
    assert props["apicurio.auth.authenticated-read-access.enabled"] == "false"
    assert not any(k.startswith("quarkus.security.users") for k in props)


def test_connects_converter_logs_in_as_the_writer(clean_env: None, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, pg_debezium_password="x", **PASSWORDS)
    env = connect_environment(settings)
    assert env["SEATFLOW_REGISTRY_WRITER_USER"] == "writer"
    assert env["SEATFLOW_REGISTRY_WRITER_PASSWORD"] == "writerpw"
    assert "adminpw" not in env.values() and "readerpw" not in env.values()
    config = load_connector_file(CONNECTORS_DIR / "ticketing-host.json").config
    for side in ("key", "value"):
        assert config[f"{side}.converter.apicurio.auth.username"] == (
            "${env:SEATFLOW_REGISTRY_WRITER_USER}")
        assert config[f"{side}.converter.apicurio.auth.password"] == (
            "${env:SEATFLOW_REGISTRY_WRITER_PASSWORD}")


def test_the_processor_and_serve_look_schemas_up_as_the_reader(clean_env: None,
                                                                tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, pg_debezium_password="x", pg_app_password="y",
                        **PASSWORDS)
    layout = StackLayout.of(settings)
    text = supervisord_conf(settings, layout, Path("/usr/bin/java"), Path("/opt/jdk/bin/java"))
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    for program in ("processor", "serve"):
        assert 'SEATFLOW_REGISTRY_USERNAME="reader"' in parser[f"program:{program}"]["environment"]
    assert "adminpw" not in text and "readerpw" not in text
