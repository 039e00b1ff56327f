"""The Dagster code location: what `dagster dev -m pipelines.definitions` shows."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import dagster as dg

from pipelines.orchestration import availability, backfill, connectors, schemas
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

defs = dg.Definitions.merge(
    availability.defs, backfill.defs, connectors.defs, schemas.defs,
    dg.Definitions(resources=resources),
)
