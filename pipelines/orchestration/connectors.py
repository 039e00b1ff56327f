"""Connector deploys from the Dagster UI, with the plan as metadata, a health sensor, and a
check of the replication slot's retained WAL.

The sensor restarts failed tasks for as long as they fail, with a capped backoff kept in its
cursor (pipelines.connect.restarts); once a connector has failed `report_after` restarts in a
row it also starts a `connector_failure_report` run, which fails with the connector's error so
the UI shows it, and goes on restarting.
"""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import json
import time
from pathlib import Path

import dagster as dg

from pipelines.connect import (
    CONNECTORS_DIR,
    DEFAULT_ENV,
    ConnectError,
    ConnectUnreachableError,
    TicketingHost,
    deploy_connectors,
    load_connectors,
)
from pipelines.connect.ops import DeployReport, connector_health
from pipelines.connect.plan import Plan
from pipelines.connect.restarts import RestartPolicy, RestartState, next_step
from pipelines.monitoring import slot_retention, slot_verdict
from pipelines.orchestration.resources import SeatflowResource
from pipelines.settings import Settings

__all__ = [
    "POLICY",
    "connector_failure_report",
    "connector_health_sensor",
    "defs",
    "deploy_connectors_job",
    "plan_markdown",
    "replication_slot_wal",
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
                          seatflow: SeatflowResource) -> dg.Output[dict]:
    client = seatflow.connect_client()
    try:
        connectors = load_connectors(Path(config.connectors_dir), env=config.env)
        report = deploy_connectors(client, connectors, ticketing=TicketingHost.of(seatflow.settings()),
                                   dry_run=config.dry_run, prune=config.prune)
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


@dg.op(description="Fails with the connector's error, so the UI shows what keeps failing.")
def report_connector_failure(config: FailureReportConfig) -> None:
    raise dg.Failure(
        description=f"{config.connector} still fails after {config.restarts} restart(s); "
                    f"connector_health_sensor goes on restarting it, at most every "
                    f"{POLICY.max_delay_s:.0f} s. {config.error}",
        metadata={"connector": config.connector, "restarts": config.restarts,
                  "error": dg.MetadataValue.text(config.error)},
    )


@dg.job(description="Started by connector_health_sensor when a connector keeps failing.")
def connector_failure_report() -> None:
    report_connector_failure()


@dg.sensor(job=connector_failure_report, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Restarts failed connector tasks for as long as they fail, with a capped "
                       "backoff; reports a connector that keeps failing.")
def connector_health_sensor(context: dg.SensorEvaluationContext,
                            seatflow: SeatflowResource) -> dg.SensorResult:
    cursor: dict[str, dict] = json.loads(context.cursor) if context.cursor else {}
    client = seatflow.connect_client(timeout=SENSOR_TIMEOUT, retries=0, rebalance_wait_s=5)
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
        if step in ("restart", "report") and state is not None:
            try:
                client.restart(name, only_failed=True)
                notes.append(f"{name}: restarted failed tasks (restart {state.restarts}; next "
                             f"after {POLICY.delay(state.restarts):.0f} s if it fails again)")
            except ConnectError as e:
                notes.append(f"{name}: restart refused: {e}")
        if step == "report" and state is not None:
            notes.append(f"{name}: still failing after {state.restarts - 1} restart(s), "
                         f"reported: {error}")
            runs.append(dg.RunRequest(
                run_key=f"{name}:{state.last_restart:.0f}",
                run_config={"ops": {"report_connector_failure": {"config": {
                    "connector": name, "restarts": state.restarts - 1,
                    "error": error or "failed"}}}},
                tags={"connector": name}))
        elif step == "wait" and state is not None:
            notes.append(f"{name}: failed, next restart in "
                         f"{POLICY.delay(state.restarts) - (now - state.last_restart):.0f} s")
        if state is not None:
            kept[name] = state.as_dict()
    new_cursor = json.dumps(kept, sort_keys=True)
    if runs:
        return dg.SensorResult(run_requests=runs, cursor=new_cursor)
    summary = "; ".join(notes) or f"{len(running)} connector(s) healthy"
    context.log.info(summary)
    return dg.SensorResult(skip_reason=summary, cursor=new_cursor)


# The connectors' replication slots live in the ticketing host: their retained WAL is checked
# against the CDC topics they feed (the slot of ticketing-host feeds every cdc.* asset; the
# check sits on the seat-inventory one, the stream the availability is made of).
CDC_SEAT_INVENTORY = dg.AssetKey(["cdc", "seat_inventory"])


class SlotCheckConfig(dg.Config):
    warn_bytes: int = Settings().slot_wal_warn_bytes
    connectors_dir: str = str(CONNECTORS_DIR)
    env: str = DEFAULT_ENV


@dg.asset_check(asset=CDC_SEAT_INVENTORY, blocking=False,
                description="WAL held by the connectors' replication slots: warns past a "
                            "threshold (SEATFLOW_SLOT_WAL_WARN_BYTES), fails when a slot is lost.")
def replication_slot_wal(config: SlotCheckConfig,
                         seatflow: SeatflowResource) -> dg.AssetCheckResult:
    slots = [c.config["slot.name"] for c in load_connectors(Path(config.connectors_dir),
                                                            env=config.env)
             if "slot.name" in c.config]
    retention = slot_retention(seatflow.settings(), slots)
    verdicts = {slot: slot_verdict(slot, retention[slot], config.warn_bytes) for slot in slots}
    worst = "error" if any(v == "error" for v, _ in verdicts.values()) else (
        "warn" if any(v == "warn" for v, _ in verdicts.values()) else "ok")
    metadata: dict[str, dg.RawMetadataValue] = {
        f"{slot}_retained_bytes": -1 if r is None or r.retained_bytes is None else r.retained_bytes
        for slot, r in retention.items()}
    metadata["wal_status"] = ", ".join(f"{s}: {r.wal_status if r else 'absent'}"
                                       for s, r in retention.items())
    metadata["report"] = dg.MetadataValue.md("\n".join(f"- {why}" for _, why in verdicts.values()))
    return dg.AssetCheckResult(
        passed=worst == "ok", metadata=metadata,
        severity=dg.AssetCheckSeverity.ERROR if worst == "error" else dg.AssetCheckSeverity.WARN)


replication_slot_checks = dg.define_asset_job(
    "replication_slot_checks", selection=dg.AssetSelection.checks(replication_slot_wal),
    description="The replication slots' retained WAL (a stopped connector makes it grow).")
replication_slot_schedule = dg.ScheduleDefinition(
    job=replication_slot_checks, cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING)

# The code location supplies the "seatflow" resource (pipelines.definitions).
defs = dg.Definitions(
    jobs=[deploy_connectors_job, connector_failure_report, replication_slot_checks],
    sensors=[connector_health_sensor],
    asset_checks=[replication_slot_wal],
    schedules=[replication_slot_schedule],
)
