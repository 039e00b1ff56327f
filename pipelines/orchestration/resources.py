"""Dagster resources: where Kafka, the registry, PostgreSQL and Connect are; secrets via EnvVar."""

import dagster as dg
from pydantic import SecretStr

from pipelines.settings import Settings

__all__ = ["ConnectResource", "KafkaResource", "PostgresResource", "RegistryResource",
           "settings_of"]

_DEFAULTS = Settings()


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster seatflow reads and writes."""

    bootstrap_servers: str = _DEFAULTS.kafka_bootstrap


class RegistryResource(dg.ConfigurableResource):
    """Apicurio Registry; clients use its Confluent-compatible API under /apis/ccompat/v7."""

    url: str = _DEFAULTS.registry_url


class PostgresResource(dg.ConfigurableResource):
    """The ticketing host, as the application role (reads reference data and inventory)."""

    host: str = _DEFAULTS.bind_host
    port: int = _DEFAULTS.pg_port
    database: str = _DEFAULTS.pg_database
    user: str = _DEFAULTS.pg_app_user
    password: str


class ConnectResource(dg.ConfigurableResource):
    """The Kafka Connect REST API."""

    url: str = _DEFAULTS.connect_url


def settings_of(kafka: KafkaResource, registry: RegistryResource,
                postgres: PostgresResource) -> Settings:
    """Settings for the plain-Python code, from the resources of a run."""
    # One host for every service (Settings.bind_host); the ports come from each resource.
    port = kafka.bootstrap_servers.rpartition(":")[2]
    registry_port = registry.url.rstrip("/").rpartition(":")[2]
    return Settings(
        bind_host=postgres.host,
        kafka_port=int(port),
        registry_port=int(registry_port),
        pg_port=postgres.port,
        pg_database=postgres.database,
        pg_app_user=postgres.user,
        pg_app_password=SecretStr(postgres.password),
    )
