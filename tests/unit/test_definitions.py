from __future__ import annotations

import pytest

from pipelines.definitions import DEPLOYMENTS, defs, deployment_resource, resources
from pipelines.orchestration.availability import restart_delay

pytestmark = pytest.mark.unit


def test_definitions_load_and_resolve_every_job() -> None:
    repo = defs.get_repository_def()
    jobs = {j.name for j in repo.get_all_jobs()}
    assert {"availability_stream", "availability_catchup", "availability_checks"} <= jobs
    graph = repo.asset_graph
    by_path = {tuple(k.path): k for k in graph.get_all_asset_keys()}
    section = graph.get(by_path[("availability", "section")])
    assert by_path[("availability", "seat")] in section.parent_keys
    seat = graph.get(by_path[("availability", "seat")])
    assert by_path[("cdc", "seat_inventory")] in seat.parent_keys
    assert repo.get_sensor_def("availability_stream_keeper") is not None


def test_stream_restarts_back_off_and_stay_bounded() -> None:
    delays = [restart_delay(n) for n in range(10)]
    assert delays[0] == 0
    assert delays == sorted(delays) and max(delays) == 600


def test_one_resource_serves_every_op_and_sensor() -> None:
    assert sorted(defs.resources or {}) == ["seatflow"]
    repo = defs.get_repository_def()
    needed = {key for job in repo.get_all_jobs() for op in job.graph.iterate_op_defs()
              for key in op.required_resource_keys}
    needed |= {key for sensor in repo.sensor_defs for key in sensor.required_resource_keys}
    assert needed == {"seatflow"}


def test_the_local_stack_is_the_default_deployment_and_an_unknown_one_is_refused() -> None:
    assert resources["seatflow"] is DEPLOYMENTS["local"]
    assert DEPLOYMENTS["local"].model_dump(exclude_none=True) == {}  # all from SEATFLOW_*
    with pytest.raises(ValueError, match=r"'stagign' is not one of .*'local'"):
        deployment_resource("stagign")
