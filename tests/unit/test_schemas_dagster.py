"""The schema deploy's Dagster definitions load and resolve."""

import dagster as dg
import pytest

from pipelines.definitions import resources
from pipelines.orchestration import schemas

pytestmark = pytest.mark.unit


def test_schema_definitions_resolve_with_their_resource() -> None:
    defs = dg.Definitions.merge(schemas.defs, dg.Definitions(resources=resources))
    job = defs.resolve_job_def("deploy_schemas")
    assert job.asset_layer.executable_asset_keys == {schemas.ASSET_KEY}
    assert {c.name for c in defs.get_repository_def().asset_graph.asset_check_keys} == \
        {"schemas_compatible"}
