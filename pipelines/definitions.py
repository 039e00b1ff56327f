"""The Dagster code location: what `dagster dev -m pipelines.definitions` shows."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import dagster as dg

from pipelines.orchestration import availability, backfill, connectors, schemas
from pipelines.orchestration.resources import SeatflowResource

# The local stack: every address and the password from the SEATFLOW_* variables or the
# settings file, as the CLI reads them.
resources = {"seatflow": SeatflowResource()}

defs = dg.Definitions.merge(
    availability.defs, backfill.defs, connectors.defs, schemas.defs,
    dg.Definitions(resources=resources),
)
