"""Connector deploys from the Dagster UI, with the plan as metadata, and a health sensor.

The sensor restarts failed tasks with a bounded backoff kept in its cursor; after the last
restart it stops retrying and starts a `connector_failure_report` run, which fails with the
connector's error so the UI shows it, instead of flapping.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import json
import time
from pathlib import Path

import dagster as dg

from pipelines.connect import (
    CONNECTORS_DIR,
    DEFAULT_ENV,
    ConnectClient,
    ConnectError,
    ConnectUnreachableError,
    deploy_connectors,
    load_connectors,
)
from pipelines.connect.health import RestartPolicy, RestartState, next_step
from pipelines.connect.ops import DeployReport, connector_health
from pipelines.connect.plan import Plan
from pipelines.orchestration.resources import ConnectResource

__all__ = [
    "POLICY",
    "connector_failure_report",
    "connector_health_sensor",
    "defs",
    "deploy_connectors_job",
    "plan_markdown",
    "resources",
]

POLICY = RestartPolicy()
# Short enough for the sensor's 60 s evaluation limit with a few connectors to restart.
SENSOR_TIMEOUT = (2.0, 8.0)


def plan_markdown(plan: Plan) -> str:
    """The plan as a Markdown table for run metadata; secrets masked."""
    rows = ["| action | connector | key | old | new |", "| --- | --- | --- | --- | --- |"]
    for item in plan.connectors:
        rows.append(f"| {item.action} | {item.name} | | | |")
        if item.action == "change":
            for ch in (c.masked() for c in item.changes):
                rows.append(f"| | | `{ch.key}` | {ch.old or ''} | {ch.new or ''} |".replace("${", "$\\{"))
    s = plan.summary()
    rows.append(f"\n{s['add']} added, {s['change']} changed, {s['remove']} removed, "
                f"{s['unchanged']} unchanged, {s['orphan']} running without a file")
    return "\n".join(rows)


class DeployConnectorsConfig(dg.Config):
    env: str = DEFAULT_ENV
    connectors_dir: str = str(CONNECTORS_DIR)
    dry_run: bool = False
    # Delete connectors that run without a file; a UI launch is the confirmation.
    prune: bool = False


def _metadata(report: DeployReport) -> dict[str, dg.MetadataValue]:
    meta: dict[str, dg.MetadataValue] = {
        "stage": dg.MetadataValue.text(report.stage),
        "report": dg.MetadataValue.json(report.as_dict()),
    }
    if report.plan is not None:
        meta["plan"] = dg.MetadataValue.md(plan_markdown(report.plan))
    if report.applied:
        meta["applied"] = dg.MetadataValue.json(report.applied)
    return meta


@dg.op(description="Lint, plan, validate and apply the connector files; the plan is the metadata.")
def apply_connector_files(context: dg.OpExecutionContext, config: DeployConnectorsConfig,
                          connect: ConnectResource) -> dg.Output[dict]:
    client = ConnectClient(connect.url)
    try:
        connectors = load_connectors(Path(config.connectors_dir), env=config.env)
        report = deploy_connectors(client, connectors, dry_run=config.dry_run, prune=config.prune)
    except ConnectError as e:
        raise dg.Failure(description=str(e)) from e
    meta = _metadata(report)
    if report.lint:
        raise dg.Failure(description="lint: " + "; ".join(str(i) for i in report.lint), metadata=meta)
    if report.invalid:
        raise dg.Failure(description="refused by Connect's validation: " + "; ".join(
            f"{e.connector} {e.key}: {e.errors[0]}" for e in report.invalid), metadata=meta)
    context.log.info(f"{report.stage}: {report.applied or 'nothing changed'}")
    return dg.Output(report.as_dict(), metadata=meta)


@dg.job(name="deploy_connectors",
        description="Deploy connectors/ to Kafka Connect (lint, plan, validate, apply).")
def deploy_connectors_job() -> None:
    apply_connector_files()


class FailureReportConfig(dg.Config):
    connector: str
    restarts: int
    error: str


@dg.op(description="Fails with the connector's error, so the UI shows what the sensor gave up on.")
def report_connector_failure(config: FailureReportConfig) -> None:
    raise dg.Failure(
        description=f"{config.connector} still fails after {config.restarts} restart(s); "
                    f"automatic restarts stopped until it is healthy again. {config.error}",
        metadata={"connector": config.connector, "restarts": config.restarts,
                  "error": dg.MetadataValue.text(config.error)},
    )


@dg.job(description="Started by connector_health_sensor when it gives up restarting a connector.")
def connector_failure_report() -> None:
    report_connector_failure()


@dg.sensor(job=connector_failure_report, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Restarts failed connector tasks with a bounded backoff; reports when it gives up.")
def connector_health_sensor(context: dg.SensorEvaluationContext,
                            connect: ConnectResource) -> dg.SensorResult:
    cursor: dict[str, dict] = json.loads(context.cursor) if context.cursor else {}
    client = ConnectClient(connect.url, timeout=SENSOR_TIMEOUT, retries=0, rebalance_wait_s=5)
    try:
        running = client.connectors()
    except ConnectUnreachableError as e:
        return dg.SensorResult(skip_reason=str(e), cursor=context.cursor)
    now = time.time()
    notes: list[str] = []
    runs: list[dg.RunRequest] = []
    kept: dict[str, dict] = {}
    for name, item in sorted(running.items()):
        health = connector_health(name, item["status"])
        old = RestartState.from_dict(cursor[name]) if name in cursor else None
        step, state = next_step(old, failed=health.failed, now=now, policy=POLICY)
        error = next((t.trace for t in health.tasks if t.state == "FAILED"), health.trace)
        if step == "restart" and state is not None:
            try:
                client.restart(name, only_failed=True)
                notes.append(f"{name}: restarted failed tasks ({state.restarts}/{POLICY.max_restarts})")
            except ConnectError as e:
                notes.append(f"{name}: restart refused: {e}")
        elif step == "give_up" and state is not None:
            notes.append(f"{name}: gave up after {state.restarts} restart(s): {error}")
            runs.append(dg.RunRequest(
                run_key=f"{name}:{state.last_restart:.0f}",
                run_config={"ops": {"report_connector_failure": {"config": {
                    "connector": name, "restarts": state.restarts, "error": error or "failed"}}}},
                tags={"connector": name}))
        elif step == "wait":
            notes.append(f"{name}: failed, next restart after backoff")
        elif step == "given_up":
            notes.append(f"{name}: failed, not restarted any more (reported)")
        if state is not None:
            kept[name] = state.as_dict()
    new_cursor = json.dumps(kept, sort_keys=True)
    if runs:
        return dg.SensorResult(run_requests=runs, cursor=new_cursor)
    summary = "; ".join(notes) or f"{len(running)} connector(s) healthy"
    context.log.info(summary)
    return dg.SensorResult(skip_reason=summary, cursor=new_cursor)


# The code location supplies the "connect" resource (pipelines.definitions); merging the same key
# from two Definitions would be refused, so these defs hold none and `resources` is for standalone use.
resources = {"connect": ConnectResource()}

defs = dg.Definitions(
    jobs=[deploy_connectors_job, connector_failure_report],
    sensors=[connector_health_sensor],
)
