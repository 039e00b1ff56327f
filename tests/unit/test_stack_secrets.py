"""The local stack's generated passwords: random, private, kept, and overridable."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from pipelines.settings import GENERATED_SECRETS, Settings, SettingsError, generated_secrets_file
from pipelines.stack.configs import TEMPLATES_DIR, render
from pipelines.stack.secrets import ensure_secrets, with_generated_secrets

pytestmark = pytest.mark.unit


@pytest.fixture
def no_seatflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in GENERATED_SECRETS:
        monkeypatch.delenv(f"SEATFLOW_{name.upper()}", raising=False)
    monkeypatch.delenv("SEATFLOW_HOME", raising=False)


def test_the_first_up_generates_a_private_random_password_per_role(
        tmp_path: Path, no_seatflow_env: None) -> None:
    settings = Settings(home=tmp_path)
    assert sorted(ensure_secrets(settings)) == sorted(GENERATED_SECRETS)
    path = generated_secrets_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    values = dotenv_values(path)
    assert len(values) == len(GENERATED_SECRETS)
    assert len(set(values.values())) == len(values)  # one of its own per role
    assert all(v and len(v) >= 40 for v in values.values())


def test_later_ups_keep_the_passwords_and_fill_in_only_what_is_missing(
        tmp_path: Path, no_seatflow_env: None) -> None:
    settings = Settings(home=tmp_path)
    ensure_secrets(settings)
    path = generated_secrets_file(tmp_path)
    first = dotenv_values(path)
    assert ensure_secrets(settings) == []
    assert dotenv_values(path) == first
    kept = {k: v for k, v in first.items() if k != "SEATFLOW_PG_REGISTRY_PASSWORD"}
    path.write_text("".join(f"{k}={v}\n" for k, v in kept.items()))
    assert ensure_secrets(settings) == ["pg_registry_password"]
    again = dotenv_values(path)
    assert {k: again[k] for k in kept} == kept and again["SEATFLOW_PG_REGISTRY_PASSWORD"]


def test_settings_read_the_generated_file_below_the_environment(
        tmp_path: Path, no_seatflow_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_secrets(Settings(home=tmp_path))
    generated = dotenv_values(generated_secrets_file(tmp_path))
    monkeypatch.setenv("SEATFLOW_HOME", str(tmp_path))
    read = Settings()
    assert read.password("pg_app_password") == generated["SEATFLOW_PG_APP_PASSWORD"]
    monkeypatch.setenv("SEATFLOW_PG_APP_PASSWORD", "from-the-environment")
    assert Settings().password("pg_app_password") == "from-the-environment"
    assert Settings().password("pg_debezium_password") == generated["SEATFLOW_PG_DEBEZIUM_PASSWORD"]


def test_settings_made_before_the_first_up_get_the_generated_passwords(
        tmp_path: Path, no_seatflow_env: None) -> None:
    before = Settings(home=tmp_path)
    with pytest.raises(SettingsError, match=r"SEATFLOW_PG_APP_PASSWORD.*stack up"):
        before.password("pg_app_password")
    ensure_secrets(before)
    after = with_generated_secrets(before)
    assert after.password("pg_app_password") == dotenv_values(
        generated_secrets_file(tmp_path))["SEATFLOW_PG_APP_PASSWORD"]
    given = with_generated_secrets(Settings(home=tmp_path, pg_app_password="given"))
    assert given.password("pg_app_password") == "given"  # what was given is never replaced


def test_the_superuser_has_no_password_and_no_tcp_login() -> None:
    assert Settings().pg_superuser_password is None
    hba = render((TEMPLATES_DIR / "pg_hba.conf").read_text(), {
        "PG_SUPERUSER": "postgres", "BIND_HOST": "127.0.0.1"})
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    host_rules = [r for r in rules if r[0] == "host"]
    # The first TCP rule that matches the superuser rejects it, for data and replication.
    for database in ("all", "replication"):
        first = next(r for r in host_rules if r[1] == database and r[2] in ("postgres", "all"))
        assert first[2] == "postgres" and first[-1] == "reject"
    assert ["local", "all", "postgres", "peer", "map=seatflow"] in rules
