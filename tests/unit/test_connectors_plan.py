"""Plan diff, masking, overlay merge and the restart backoff: pure functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.connect import ConnectorFileError, load_connectors
from pipelines.connect.files import merge_overlay
from pipelines.connect.ops import connector_health, field_errors, format_offset, short_trace
from pipelines.connect.plan import MASK, KeyChange, mask_value, plan_connectors
from pipelines.connect.restarts import RestartPolicy, RestartState, next_step

pytestmark = pytest.mark.unit


def test_merge_overlay_sets_and_removes_keys_and_leaves_the_rest() -> None:
    base = {"a": "1", "b": "2", "c": "3"}
    assert merge_overlay(base, {"b": "20", "c": None, "d": "4"}) == {"a": "1", "b": "20", "d": "4"}
    assert base == {"a": "1", "b": "2", "c": "3"}


def test_overlay_is_chosen_by_env(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"name": "c", "config": {"k": "base", "x": "1"}}))
    (tmp_path / "overlays" / "prod").mkdir(parents=True)
    (tmp_path / "overlays" / "prod" / "c.json").write_text(json.dumps({"config": {"k": "prod"}}))
    [local] = load_connectors(tmp_path, env="local")
    [prod] = load_connectors(tmp_path, env="prod")
    assert local.config == {"k": "base", "x": "1"}
    assert prod.config == {"k": "prod", "x": "1"}
    assert prod.source_of("k").parent.name == "prod"
    assert prod.source_of("x") == tmp_path / "c.json"


@pytest.mark.parametrize(("base", "overlay", "message"), [
    ('{"name": "c", "config": {"k": 1}}', None, "config values must be strings: k"),
    ('{"config": {"k": "v"}}', None, "expected an object with a string 'name'"),
    ('{"name": "c", "config": {', None, "not valid JSON"),
    ('{"name": "c", "config": {"k": "v"}}', '{"name": "c", "config": {"k": "w"}}',
     "an overlay holds only a 'config' object"),
])
def test_bad_files_are_named(tmp_path: Path, base: str, overlay: str | None, message: str) -> None:
    (tmp_path / "c.json").write_text(base)
    if overlay:
        (tmp_path / "overlays" / "prod").mkdir(parents=True)
        (tmp_path / "overlays" / "prod" / "c.json").write_text(overlay)
    with pytest.raises(ConnectorFileError, match=message) as e:
        load_connectors(tmp_path, env="prod")
    assert "c.json" in str(e.value)


def test_an_overlay_without_a_base_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"name": "c", "config": {"k": "v"}}')
    (tmp_path / "overlays" / "prod").mkdir(parents=True)
    (tmp_path / "overlays" / "prod" / "gone.json").write_text('{"config": {"k": "w"}}')
    with pytest.raises(ConnectorFileError, match=r"overlays without a base file: gone\.json"):
        load_connectors(tmp_path, env="prod")


def test_plan_adds_changes_keeps_and_reports_orphans() -> None:
    wanted = {"new": {"k": "v"}, "same": {"k": "v"}, "moved": {"k": "2", "add": "x"}}
    running = {"same": {"k": "v", "name": "same"}, "moved": {"k": "1", "gone": "y", "name": "moved"},
               "orphan": {"k": "v", "name": "orphan"}}
    plan = plan_connectors(wanted, running)
    assert [(c.name, c.action) for c in plan.connectors] == [
        ("moved", "change"), ("new", "add"), ("same", "unchanged"), ("orphan", "orphan")]
    moved = plan.connectors[0]
    assert moved.changes == (KeyChange("add", None, "x"), KeyChange("gone", "y", None),
                             KeyChange("k", "1", "2"))
    assert [c.kind for c in moved.changes] == ["added", "removed", "changed"]
    assert moved.wanted == {"k": "2", "add": "x", "name": "moved"}
    assert plan.has_changes
    assert plan.summary() == {"add": 1, "change": 1, "unchanged": 1, "orphan": 1, "remove": 0}


def test_plan_with_prune_removes_orphans_and_nothing_changes_when_in_sync() -> None:
    assert [c.action for c in plan_connectors({}, {"o": {"name": "o"}}, prune=True).connectors] == ["remove"]
    in_sync = plan_connectors({"c": {"k": "v"}}, {"c": {"k": "v", "name": "c"}})
    assert not in_sync.has_changes


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("database.password", "hunter2", MASK),
    ("sasl.jaas.config", "org.apache...required password=x;", MASK),
    ("database.password", "${env:SEATFLOW_DEBEZIUM_PASSWORD}", "${env:SEATFLOW_DEBEZIUM_PASSWORD}"),
    ("database.user", "debezium", "debezium"),
    ("key.converter", "io.x.AvroConverter", "io.x.AvroConverter"),
    ("database.password", None, None),
])
def test_mask_value(key: str, value: str | None, shown: str | None) -> None:
    assert mask_value(key, value) == shown


def test_plan_as_dict_masks_secrets() -> None:
    plan = plan_connectors({"c": {"database.password": "new-secret"}},
                           {"c": {"database.password": "old-secret", "name": "c"}})
    assert plan.as_dict()["connectors"][0]["changes"] == [
        {"key": "database.password", "change": "changed", "old": MASK, "new": MASK}]


def test_validate_response_to_field_errors() -> None:
    response = {"configs": [
        {"definition": {}, "value": None},
        {"value": {"name": "slot.name", "value": "Bad!", "errors": ["invalid slot name"]}},
        {"value": {"name": "database.password", "value": "pw", "errors": ["login failed"]}},
        {"value": {"name": "topic.prefix", "value": "cdc", "errors": []}},
    ]}
    assert [(e.key, e.value, e.errors) for e in field_errors("c", response)] == [
        ("slot.name", "Bad!", ("invalid slot name",)), ("database.password", MASK, ("login failed",))]


def test_short_trace_keeps_the_first_line_and_the_root_cause() -> None:
    trace = ("org.apache.kafka.connect.errors.ConnectException: boom\n\tat a.b(C.java:1)\n"
             "Caused by: x.Y: middle\n\tat d\nCaused by: org.postgresql.PSQLException: FATAL: "
             "password authentication failed\n\tat e")
    assert short_trace(trace) == ("org.apache.kafka.connect.errors.ConnectException: boom | Caused by: "
                                  "org.postgresql.PSQLException: FATAL: password authentication failed")
    assert short_trace(None) == ""
    assert short_trace("x" * 500, width=10) == "x" * 9 + "…"


def test_connector_health_from_status() -> None:
    status = {"name": "c", "type": "source",
              "connector": {"state": "RUNNING", "worker_id": "w:1"},
              "tasks": [{"id": 1, "state": "RUNNING", "worker_id": "w:1"},
                        {"id": 0, "state": "FAILED", "worker_id": "w:1", "trace": "E: bad\n\tat x"}]}
    health = connector_health("c", status)
    assert health.failed
    assert [(t.id, t.state, t.trace) for t in health.tasks] == [(0, "FAILED", "E: bad"), (1, "RUNNING", "")]
    assert connector_health("gone", None).state == "ABSENT"


POLICY = RestartPolicy(report_after=3, first_delay_s=10, max_delay_s=25, stable_after_s=100)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [POLICY.delay(n) for n in range(6)] == [0, 10, 20, 25, 25, 25]
    assert [RestartPolicy().delay(n) for n in (1, 2, 3, 4, 5, 6, 20)] == [
        10, 20, 40, 80, 160, 300, 300]


def test_restarts_go_on_for_ever_with_a_capped_backoff_and_one_report() -> None:
    steps = []
    state: RestartState | None = None
    for now in (0, 5, 10, 15, 29, 30, 54, 55, 79, 80, 104, 105, 1000):
        step, state = next_step(state, failed=True, now=now, policy=POLICY)
        steps.append((now, step))
    assert steps == [(0, "restart"), (5, "wait"), (10, "restart"), (15, "wait"), (29, "wait"),
                     (30, "restart"), (54, "wait"), (55, "report"), (79, "wait"),
                     (80, "restart"), (104, "wait"), (105, "restart"), (1000, "restart")]
    assert state == RestartState(restarts=7, last_restart=1000, reported=True)


def test_backoff_forgets_only_after_a_stable_period() -> None:
    _, state = next_step(None, failed=True, now=0, policy=POLICY)
    step, kept = next_step(state, failed=False, now=50, policy=POLICY)
    assert (step, kept) == ("healthy", state)
    # A relapse within the stable period counts on: the flapping task backs off.
    assert next_step(kept, failed=True, now=60, policy=POLICY)[1] == RestartState(2, 60)
    assert next_step(state, failed=False, now=100, policy=POLICY) == ("healthy", None)


def test_a_reported_connector_that_recovers_is_forgotten_and_reported_again_next_time() -> None:
    reported = RestartState(restarts=4, last_restart=30, reported=True)
    assert next_step(reported, failed=False, now=1000, policy=POLICY) == ("healthy", None)
    assert RestartState.from_dict(reported.as_dict()) == reported
    # A cursor of the sensor before it restarted for ever.
    assert RestartState.from_dict({"restarts": 4, "last_restart": 30.0, "gave_up": True}) == reported
    state: RestartState | None = None
    steps = []
    for now in (2000, 2010, 2030, 2055):
        step, state = next_step(state, failed=True, now=now, policy=POLICY)
        steps.append(step)
    assert steps == ["restart", "restart", "restart", "report"]


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("lsn", 60302424, "0/3982458"), ("lsn_commit", (1 << 32) + 16, "1/10"), ("txId", 820, "820"),
    ("lsn", None, "None"), ("snapshot", True, "True"),
])
def test_format_offset(key: str, value: object, shown: str) -> None:
    assert format_offset(key, value) == shown
