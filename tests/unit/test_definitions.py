from __future__ import annotations

import pytest

from pipelines.definitions import defs

pytestmark = pytest.mark.unit


def test_definitions_load_and_resolve_every_job() -> None:
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {"availability_stream", "availability_catchup"}
    graph = repo.asset_graph
    key = next(k for k in graph.get_all_asset_keys() if k.path == ["availability", "seat_availability"])
    assert any(p.path == ["cdc", "seat_inventory"] for p in graph.get(key).parent_keys)
