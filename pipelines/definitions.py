"""The Dagster code location: what `dagster dev -m pipelines.definitions` shows."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import contextlib
import importlib

import dagster as dg

from pipelines.orchestration import availability
from pipelines.orchestration.resources import (
    ConnectResource,
    KafkaResource,
    PostgresResource,
    RegistryResource,
)

# Resources for the local stack; another environment sets the SEATFLOW_* variables.
resources = {
    "kafka": KafkaResource(),
    "registry": RegistryResource(),
    "postgres": PostgresResource(password=dg.EnvVar("SEATFLOW_PG_APP_PASSWORD")),
    "connect": ConnectResource(),
}

_parts = [availability.defs]
for _name in ("connectors", "schemas"):  # deploy tooling, when present
    with contextlib.suppress(ModuleNotFoundError):
        _parts.append(importlib.import_module(f"pipelines.orchestration.{_name}").defs)

defs = dg.Definitions.merge(*_parts, dg.Definitions(resources=resources))
