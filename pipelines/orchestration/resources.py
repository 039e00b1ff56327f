"""The one Dagster resource: the `Settings` of a deployment, and the clients built from them.

What a deployment sets is resource config: optional overrides of the `Settings` fields that say
where the services are and who we are. Every field left unset, and every secret, comes from
`Settings` itself (SEATFLOW_* variables, then the settings file), as for the CLI and the
processor: so the resource has no password field, and no password is ever resource or run
config (Dagster stores and shows both in plain text).
"""

# No `from __future__ import annotations`: Dagster reads the field annotations at runtime.

from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from pipelines.avro.schemas import SchemaRegistry
from pipelines.connect import ConnectClient
from pipelines.settings import Settings

__all__ = ["SeatflowResource"]


class SeatflowResource(dg.ConfigurableResource):
    """Where Kafka, the registry, Kafka Connect and the ticketing host are; None keeps the value
    of `Settings` (environment or settings file). Names and meanings are those of `Settings`."""

    bind_host: str | None = None
    kafka_host: str | None = None
    kafka_port: int | None = None
    registry_host: str | None = None
    registry_port: int | None = None
    connect_port: int | None = None
    pg_host: str | None = None
    pg_port: int | None = None
    pg_database: str | None = None
    pg_app_user: str | None = None

    _settings: Settings | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        """The deployment's Settings: the overrides over the environment's, read once."""
        if self._settings is None:
            overrides = {k: v for k, v in self.model_dump().items() if v is not None}
            self._settings = Settings(**overrides)
        return self._settings

    def connect_client(self, **options: Any) -> ConnectClient:
        """A client of the Kafka Connect REST API, with the REST credentials of `Settings`;
        `options` are ConnectClient's (timeout, retries, rebalance_wait_s)."""
        return ConnectClient.from_settings(self.settings(), **options)

    def schema_registry(self) -> SchemaRegistry:
        """A client of the schema registry."""
        return SchemaRegistry.from_settings(self.settings())
