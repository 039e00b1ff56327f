"""The Dagster code location: what `dagster dev -m pipelines.definitions` shows."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import os

import dagster as dg

from pipelines.orchestration import availability, backfill, connectors, schemas
from pipelines.orchestration.resources import SeatflowResource

# The `seatflow` resource of each deployment; SEATFLOW_DEPLOYMENT names the one this code
# location runs in (default "local").
DEPLOYMENTS = {
    # The local stack (`seatflow stack up`): every address and the password as the CLI reads
    # them, from the SEATFLOW_* variables or the settings file.
    "local": SeatflowResource(),
    # Another environment adds an entry with the addresses its SEATFLOW_* variables do not
    # give; its password stays in its environment (SEATFLOW_PG_APP_PASSWORD), e.g.
    # "production": SeatflowResource(
    #     kafka_host="kafka.seatflow.internal", kafka_port=9092,
    #     registry_host="registry.seatflow.internal", registry_port=8080,
    #     bind_host="connect.seatflow.internal", connect_port=8083,  # Connect is on bind_host
    #     pg_host="ticketing-db.seatflow.internal", pg_port=5432),
}


def deployment_resource(name: str) -> SeatflowResource:
    """The resource of deployment `name`; an unknown name is refused when the location loads."""
    if name not in DEPLOYMENTS:
        raise ValueError(f"SEATFLOW_DEPLOYMENT={name!r} is not one of {sorted(DEPLOYMENTS)} "
                         "(pipelines/definitions.py)")
    return DEPLOYMENTS[name]


resources = {"seatflow": deployment_resource(os.environ.get("SEATFLOW_DEPLOYMENT", "local"))}

defs = dg.Definitions.merge(
    availability.defs, backfill.defs, connectors.defs, schemas.defs,
    dg.Definitions(resources=resources),
)
