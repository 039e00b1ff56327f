"""Settings of seatflow: ports, folders and credentials, from SEATFLOW_* variables or a settings
file (the project's .env, or the file SEATFLOW_ENV_FILE names)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pipelines.errors import SeatflowError

__all__ = ["GENERATED_SECRETS", "KAFKA_PRINCIPALS", "REGISTRY_PRINCIPALS", "Settings",
           "SettingsError",
           "generated_secrets_file", "get_settings", "kafka_login_defaults",
           "read_generated_secrets", "settings_file"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def settings_file() -> Path:
    """The settings file read under the environment: SEATFLOW_ENV_FILE when set, else the .env in
    the project's root. Never the current folder's: a .env left in any folder a command runs from
    (as root, at `stack up`) could otherwise point SEATFLOW_PG_BIN_DIR at a program of its
    writer's."""
    explicit = os.environ.get("SEATFLOW_ENV_FILE")
    return Path(explicit) if explicit else PROJECT_ROOT / ".env"


def _default_home() -> Path:
    # PostgreSQL runs as the unprivileged postgres user when we are root, and that user cannot
    # enter /root; so root's stack lives under /var/lib.
    if os.geteuid() == 0:
        return Path("/var/lib/seatflow")
    return Path.home() / ".local" / "share" / "seatflow"


# The passwords the local stack generates at its first `up` (pipelines/stack/secrets.py), under
# the stack's home: its PostgreSQL roles', its Kafka principals' and its Kafka Connect REST
# user's and its registry users'. Read below the environment and the settings file, so either
# overrides.
GENERATED_SECRETS = ("pg_app_password", "pg_debezium_password", "pg_registry_password",
                     "kafka_admin_password", "kafka_connect_password", "kafka_processor_password",
                     "kafka_reader_password", "connect_password", "registry_admin_password",
                     "registry_writer_password", "registry_reader_password")
# The local stack's Kafka principals (SCRAM-SHA-512 users, pipelines/kafka/acls.py says what
# each may do); each has a generated password, kafka_<name>_password.
KAFKA_PRINCIPALS = ("admin", "connect", "processor", "reader")
# The local stack's registry users (HTTP basic auth, stack/conf/apicurio-registry.properties)
# and the Apicurio role each has: writer registers (and deletes) schemas (`deploy`, Connect's
# converter), reader only looks them up (the processor, serve and the other readers), admin may
# also change the registry's global rules. Each has a generated password,
# registry_<name>_password.
REGISTRY_PRINCIPALS = {"admin": "sr-admin", "writer": "sr-developer", "reader": "sr-readonly"}
# How a client of the local stack's broker logs in (stack/conf/server.properties).
STACK_KAFKA_LOGIN = {"kafka_security_protocol": "SASL_PLAINTEXT",
                     "kafka_sasl_mechanism": "SCRAM-SHA-512"}


def generated_secrets_file(home: Path) -> Path:
    return home / "secrets" / "passwords.env"


def read_generated_secrets(home: Path) -> dict[str, str]:
    """The passwords generated into <home>/secrets/passwords.env, by setting name (those with a
    value); none when the file is not there yet or not ours to read."""
    try:
        values = dotenv_values(generated_secrets_file(home))
    except OSError:
        return {}
    found = {name: values.get(f"SEATFLOW_{name.upper()}") for name in GENERATED_SECRETS}
    return {name: value for name, value in found.items() if value}


def kafka_login_defaults(generated: dict[str, str], given: dict[str, Any]) -> dict[str, Any]:
    """The Kafka login that the stack's principals' passwords imply (generated into the home,
    or given, as docker-compose.yml's .env does), for the settings that `given` (those set
    otherwise) leaves out: SASL_PLAINTEXT with SCRAM-SHA-512, as admin unless another principal
    is named (the supervised processor and serve are), with that principal's password. Nothing
    when no principal has a password (a stack made before its broker asked for logins) or a
    security protocol is given (a broker elsewhere)."""
    fields = [f"kafka_{p}_password" for p in KAFKA_PRINCIPALS]
    passwords = {**generated, **{k: _plain(given[k]) for k in fields if _plain(given.get(k))}}
    if not any(passwords.get(f) for f in fields) or "kafka_security_protocol" in given:
        return {}
    defaults: dict[str, Any] = {k: v for k, v in STACK_KAFKA_LOGIN.items() if k not in given}
    username = given.get("kafka_username")
    if "kafka_username" not in given:
        username = defaults["kafka_username"] = "admin"
    if "kafka_password" not in given and username in KAFKA_PRINCIPALS:
        password = passwords.get(f"kafka_{username}_password")
        if password:
            defaults["kafka_password"] = password
    return defaults


def _plain(value: Any) -> str:
    return str(value.get_secret_value() if isinstance(value, SecretStr) else value or "")


class SettingsError(SeatflowError):
    """A setting needed now has no value; the message says how to give it one."""


class _GeneratedSecrets(PydanticBaseSettingsSource):
    """The passwords in <home>/secrets/passwords.env, home as the sources above resolve it."""

    def __init__(self, settings_cls: type[BaseSettings],
                 above: tuple[PydanticBaseSettingsSource, ...]) -> None:
        super().__init__(settings_cls)
        self._above = above

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        given: dict[str, Any] = {}
        for source in reversed(self._above):  # the first source wins
            given.update(source())
        home = given.get("home")
        generated = read_generated_secrets(Path(home) if home else _default_home())
        return {**generated, **kafka_login_defaults(generated, given)}


class Settings(BaseSettings):
    """Everything that differs between machines; defaults suit one developer's laptop."""

    model_config = SettingsConfigDict(
        env_prefix="SEATFLOW_", env_file=settings_file(), env_file_encoding="utf-8",
        extra="ignore"
    )

    # Where the local stack keeps its data, logs and generated configs (wiped by `stack reset`).
    home: Path = Field(default_factory=_default_home)
    # Where Maven artifacts are cached; survives `stack reset` so a second `up` downloads nothing.
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "seatflow")

    bind_host: str = "127.0.0.1"
    # Where clients reach a service that is not on bind_host (docker-compose.yml's processor
    # containers reach kafka, registry and postgres by name; other machines in production).
    # The local stack binds every service to bind_host and leaves these unset.
    kafka_host: str | None = None
    registry_host: str | None = None
    pg_host: str | None = None
    pg_port: int = 54329
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    connect_port: int = 18083
    # Kafka Connect's REST API asks for HTTP basic auth (Kafka's BasicAuthSecurityRestExtension,
    # stack/conf/connect-distributed.properties): every client of it sends these. The local
    # stack writes the user and password into <home>/secrets/connect-users.properties.
    connect_user: str = Field(default="seatflow", pattern=r"^[A-Za-z0-9_.-]+$")
    connect_password: SecretStr = SecretStr("")  # generated at the first `stack up`
    registry_port: int = 18081
    # The registry asks every request for HTTP basic auth (the local stack's, and
    # docker-compose.yml's): every client of it sends registry_auth(). The user this process is
    # (admin, writer or reader; admin unless named: the supervised processor and serve are
    # readers), with registry_password, else that user's generated password.
    registry_username: str = Field(default="admin", pattern=r"^[A-Za-z0-9_.-]+$")
    registry_password: SecretStr | None = None
    # The local stack's registry users' passwords, generated at the first `stack up`.
    registry_admin_password: SecretStr = SecretStr("")
    registry_writer_password: SecretStr = SecretStr("")
    registry_reader_password: SecretStr = SecretStr("")
    dagster_port: int = 3000
    # `seatflow serve`: the seat map page, its API and live stream.
    serve_port: int = 18090

    # How clients log in to Kafka; every client takes these from pipelines/kafka/clients.py.
    # Unset, they connect in plaintext and anonymously, as the local stack's broker expects.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    # The principal this process is (admin, connect, processor, reader): its SASL user.
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    # The CA that signed the brokers' certificates, when the system's store does not hold it.
    kafka_ssl_ca_location: Path | None = None
    # The local stack's SCRAM users' passwords, generated at the first `stack up`. With them,
    # and no Kafka login set otherwise, clients log in to the stack's broker as admin (or as
    # the principal SEATFLOW_KAFKA_USERNAME names) with SASL_PLAINTEXT and SCRAM-SHA-512.
    kafka_admin_password: SecretStr = SecretStr("")
    kafka_connect_password: SecretStr = SecretStr("")
    kafka_processor_password: SecretStr = SecretStr("")
    kafka_reader_password: SecretStr = SecretStr("")

    pg_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    pg_superuser: str = "postgres"
    # Unset, the superuser logs in only through the local stack's socket (peer authentication):
    # it has no password and cannot log in over TCP. Set it for a PostgreSQL elsewhere
    # (docker-compose.yml's, a managed one), which the superuser reaches over TCP.
    pg_superuser_password: SecretStr | None = None
    pg_database: str = "ticketing"
    # Owner of the ticketing schema; the simulator and seed connect as this role.
    pg_app_user: str = "ticketing_app"
    pg_app_password: SecretStr = SecretStr("")  # generated at the first `stack up`
    # Least-privilege role that Debezium connects as.
    pg_debezium_user: str = "debezium"
    pg_debezium_password: SecretStr = SecretStr("")  # generated at the first `stack up`
    # The registry keeps its schemas in a database of its own.
    pg_registry_database: str = "registry"
    pg_registry_user: str = "registry"
    pg_registry_password: SecretStr = SecretStr("")  # generated at the first `stack up`

    # A replication slot holding more WAL than this is warned about (Dagster's
    # replication_slot_wal check); PostgreSQL drops the slot's WAL past max_slot_wal_keep_size
    # (stack/conf/postgresql.conf), so keep this well below that.
    slot_wal_warn_bytes: int = 1024**3

    topic_prefix: str = "cdc"
    # Partitions of the seat-inventory CDC topic and of the availability topics co-partitioned
    # with it (one event's records in one partition of each): the processor's unit of scale.
    # Fixed when the topics are created (changing it moves every event: `seatflow stack reset`).
    partitions: int = Field(default=6, ge=1, le=1000)
    # Processor instances (slots) that Dagster keeps running, each a member of the consumer
    # group with its own transactional id; more than `partitions` would idle.
    processor_instances: int = Field(default=2, ge=1, le=1000)
    # Warm standbys beside each processor worker (pipelines/processor/supervise.py): the oldest
    # takes over a crashed worker at once. Two, so that a crash within the seconds a new standby
    # needs to read the state still finds one warm; 0 restarts a crashed worker cold.
    processor_standbys: int = Field(default=2, ge=0, le=8)
    connector_name: str = "ticketing-host"
    # The Avro codec (pipelines.avro): seatflow_native (Rust, the `native` extra) when it is
    # installed, else the pure-Python one; SEATFLOW_CODEC=python or native forces one.
    codec: Literal["auto", "native", "python"] = "auto"

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        above = (init_settings, env_settings, dotenv_settings)
        return (*above, _GeneratedSecrets(settings_cls, above), file_secret_settings)

    def password(self, field: str) -> str:
        """The value of a password setting; SettingsError when it has none."""
        secret = getattr(self, field)
        if secret is None or not secret.get_secret_value():
            generated = (f"`seatflow stack up` generates the local stack's passwords into "
                         f"{generated_secrets_file(self.home)}; elsewhere "
                         if field in GENERATED_SECRETS else "")
            raise SettingsError(f"SEATFLOW_{field.upper()} has no value: {generated}set it in "
                                "the environment or the settings file")
        return str(secret.get_secret_value())

    def as_principal(self, principal: str) -> Settings:
        """These settings, logged in to Kafka as one of the local stack's principals
        (KAFKA_PRINCIPALS) with its password, when they log in as another of them: Dagster runs
        every kind of job as admin, but its processor runs as processor. Unchanged when the login
        is not the stack's (a cluster elsewhere gives each program its own login) or the
        principal has no password."""
        password = getattr(self, f"kafka_{principal}_password", None)
        if (principal not in KAFKA_PRINCIPALS or self.kafka_username not in KAFKA_PRINCIPALS
                or self.kafka_username == principal or not password
                or not password.get_secret_value()):
            return self
        return self.model_copy(update={"kafka_username": principal, "kafka_password": password})

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host or self.bind_host}:{self.kafka_port}"

    @property
    def pg_endpoint(self) -> tuple[str, int]:
        """Where the ticketing host's PostgreSQL is reached: pg_host (else bind_host), pg_port.
        The one host and port that connectors may capture from (pipelines/connect/lint.py)."""
        return self.pg_host or self.bind_host, self.pg_port

    @property
    def connect_url(self) -> str:
        return f"http://{self.bind_host}:{self.connect_port}"

    @property
    def registry_url(self) -> str:
        """Base URL of Apicurio Registry (core v3 API lives under /apis/registry/v3)."""
        return f"http://{self.registry_host or self.bind_host}:{self.registry_port}"

    def registry_auth(self) -> tuple[str, str] | None:
        """The registry user and password every client sends (HTTP basic auth): registry_username
        with registry_password, else that user's generated password. None when neither is there
        (a registry elsewhere that asks for no login)."""
        user = self.registry_username
        if self.registry_password is not None and self.registry_password.get_secret_value():
            return user, self.registry_password.get_secret_value()
        field = f"registry_{user}_password"
        if user in REGISTRY_PRINCIPALS and getattr(self, field).get_secret_value():
            return user, self.password(field)
        return None

    def registry_login_as(self, user: str) -> Settings:
        """These settings logging in to the registry as `user` (one of REGISTRY_PRINCIPALS), unless
        they name their registry user or give its password themselves."""
        if "registry_username" in self.model_fields_set or self.registry_password is not None:
            return self
        return self.model_copy(update={"registry_username": user})

    @property
    def ccompat_url(self) -> str:
        """Confluent-compatible API of the registry, for confluent-kafka's client."""
        return f"{self.registry_url}/apis/ccompat/v7"

    def pg_dsn(self, *, user: str | None = None, password: SecretStr | None = None,
               database: str | None = None) -> str:
        """libpq connection string for the local PostgreSQL."""
        user = user or self.pg_app_user
        secret = password if password is not None else (
            SecretStr(self.password("pg_app_password")) if user == self.pg_app_user else None
        )
        host, port = self.pg_endpoint
        parts = [
            f"host={host}",
            f"port={port}",
            f"dbname={database or self.pg_database}",
            f"user={user}",
        ]
        if secret is not None:
            parts.append(f"password={secret.get_secret_value()}")
        return " ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
