"""Schema deploys from the Dagster UI: check and register schemas/, results as metadata.

The logic is pipelines.avro.schemas; this module only shows it. `registered_schemas` registers
(all or nothing, after checking); its asset check `schemas_compatible` only asks, so a breaking
schema shows in the UI before anyone deploys it.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import dagster as dg

from pipelines.avro.schemas import (
    IncompatibleSchemaError,
    Registration,
    SubjectCheck,
    check_schemas,
    load_compatibility,
    local_schemas,
    register_schemas,
)
from pipelines.orchestration.resources import SeatflowResource

__all__ = ["defs", "deploy_schemas_job", "registered_schemas", "schemas_compatible"]

ASSET_KEY = dg.AssetKey(["schemas", "registered_schemas"])


def checks_markdown(checks: list[SubjectCheck]) -> str:
    rows = ["| subject | level | registry level | versions | status |", "|---|---|---|---|---|"]
    rows += [f"| {c.subject} | {c.level} | {c.registry_level or '-'} | "
             f"{', '.join(map(str, c.versions)) or '-'} | {c.status} |" for c in checks]
    problems = [f"- **{c.subject}**: {p}" for c in checks for p in c.problems]
    return "\n".join(rows + (["", *problems] if problems else []))


def registrations_markdown(registrations: list[Registration]) -> str:
    rows = ["| subject | level | version | schema id | status |", "|---|---|---|---|---|"]
    rows += [f"| {r.subject} | {r.level} | {r.version} | {r.schema_id} | {r.status} |"
             for r in registrations]
    return "\n".join(rows)


@dg.asset(key=ASSET_KEY, group_name="schemas", kinds={"avro"},
          description="The Avro schemas of schemas/, registered under their subjects with the "
                      "levels of schemas/compatibility.json; nothing is registered if one breaks.")
def registered_schemas(context: dg.AssetExecutionContext,
                       seatflow: SeatflowResource) -> dg.MaterializeResult:
    try:
        registrations = register_schemas(seatflow.schema_registry(), local_schemas(),
                                         levels=load_compatibility())
    except IncompatibleSchemaError as e:
        raise dg.Failure(description=str(e), metadata={
            "checks": dg.MetadataValue.md(checks_markdown(e.checks))}) from e
    new = [r.subject for r in registrations if r.status == "registered"]
    context.log.info(f"registered {', '.join(new) or 'nothing new'}")
    return dg.MaterializeResult(metadata={
        "subjects": dg.MetadataValue.md(registrations_markdown(registrations)),
        "new_versions": len(new),
        "unchanged": len(registrations) - len(new),
    })


@dg.asset_check(asset=ASSET_KEY, description="Every local schema is compatible with the "
                                             "versions registered under its subject.")
def schemas_compatible(seatflow: SeatflowResource) -> dg.AssetCheckResult:
    checks = check_schemas(seatflow.schema_registry(), local_schemas(), load_compatibility())
    broken = [c.subject for c in checks if not c.ok]
    return dg.AssetCheckResult(
        passed=not broken,
        description=f"breaks: {', '.join(broken)}" if broken else f"{len(checks)} schemas ok",
        metadata={"checks": dg.MetadataValue.md(checks_markdown(checks))},
    )


deploy_schemas_job = dg.define_asset_job(
    "deploy_schemas", selection=dg.AssetSelection.assets(ASSET_KEY),
    description="Check schemas/ against the registry, then set levels and register new versions.")

# The code location supplies the "seatflow" resource (pipelines.definitions).
defs = dg.Definitions(
    assets=[registered_schemas],
    asset_checks=[schemas_compatible],
    jobs=[deploy_schemas_job],
)
