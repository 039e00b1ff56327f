"""Backfills and reconciliation in Dagster: a job partitioned by event, a reconciliation
schedule for the events on sale, and sensors that follow the events table and backfill drift."""

# No `from __future__ import annotations`: Dagster inspects the annotations at runtime.

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dagster as dg
import psycopg

from pipelines.backfill import BackfillError, Progress, backfill_event
from pipelines.orchestration.availability import (
    ACTIVE_RUN_STATUSES,
    OFFSETS_LOST_TAG,
    availability_stream,
)
from pipelines.orchestration.resources import SeatflowResource
from pipelines.reconcile import Reconciliation, on_sale_events, reconcile_events

__all__ = ["DRIFTED_TAG", "backfill_event_job", "defs", "drifted_events", "events_partitions",
           "partition_changes", "reconcile_on_sale_job"]

events_partitions = dg.DynamicPartitionsDefinition(name="ticketing_events")
DRIFTED_TAG = "seatflow/drifted-events"


def _report_md(result: Reconciliation) -> dg.MetadataValue:
    return dg.MetadataValue.md("```\n" + result.report(limit=20) + "\n```")


class BackfillConfig(dg.Config):
    """How to backfill: Debezium's incremental snapshot, or rows read from the database."""

    method: Literal["debezium", "database"] = "debezium"
    timeout_s: float = 600


@dg.op(description="Backfills the partition's event and waits until the processor published it.")
def backfill_event_op(context: dg.OpExecutionContext, config: BackfillConfig,
                      seatflow: SeatflowResource) -> dict:
    event_id = int(context.partition_key)
    last = [0.0]

    def progress(p: Progress) -> None:
        if time.monotonic() - last[0] >= 5 or p.covered == p.seats:
            last[0] = time.monotonic()
            context.log.info(f"event {event_id}: {p.covered:,} of {p.seats:,} seats captured "
                             f"({p.rows:,} snapshot rows, {p.streamed:,} streamed) in "
                             f"{p.seconds:.1f} s, {p.seats_per_second:,.0f} seats/s")

    try:
        report = backfill_event(seatflow.settings(), event_id,
                                method=config.method, timeout_s=config.timeout_s,
                                progress=progress, say=context.log.info)
    except BackfillError as e:
        raise dg.Failure(description=str(e)) from e
    data = report.as_dict()
    context.add_output_metadata({k: v for k, v in data.items() if v is not None})
    return data


@dg.op(description="Reconciles the backfilled event; fails with a report when it differs.")
def reconcile_backfilled_event(context: dg.OpExecutionContext, report: dict,
                               seatflow: SeatflowResource) -> None:
    event_id = int(report["event_id"])
    result = reconcile_events(seatflow.settings(), [event_id])[event_id]
    context.log.info(result.report())
    metadata: dict[str, Any] = {"passed": result.passed, "seat_differences": len(result.seat_differences),
                "count_differences": len(result.count_differences), "report": _report_md(result)}
    if not result.passed:
        raise dg.Failure(description=result.summary(), metadata=metadata)
    context.add_output_metadata(metadata)


@dg.job(name="backfill_event", partitions_def=events_partitions,
        tags={"seatflow/role": "backfill"},
        description="Re-creates an event's availability from the source of truth (one run per "
                    "event; select many partitions for many events), then reconciles it.")
def backfill_event_job() -> None:
    reconcile_backfilled_event(backfill_event_op())


@dg.op(description="Reconciles every event on sale; tags the run with the events that drifted.")
def reconcile_on_sale_op(context: dg.OpExecutionContext, seatflow: SeatflowResource) -> None:
    settings = seatflow.settings()
    events = on_sale_events(settings)
    results = reconcile_events(settings, events)
    drifted = sorted(e for e, r in results.items() if not r.passed)
    for result in results.values():
        context.log.info(result.report())
    # The drift sensor reads the tag once the run has ended.
    context.instance.add_run_tags(context.run_id, {DRIFTED_TAG: ",".join(map(str, drifted))})
    metadata: dict[str, Any] = {"events": len(events), "drifted": ",".join(map(str, drifted)) or "none",
                "report": dg.MetadataValue.md("\n\n".join(
                    "```\n" + r.report(limit=10) + "\n```" for r in results.values()) or "none")}
    if drifted:
        raise dg.Failure(description=f"{len(drifted)} event(s) differ: {drifted}",
                         metadata=metadata)
    context.add_output_metadata(metadata)


@dg.job(name="reconcile_on_sale", tags={"seatflow/role": "reconcile"},
        description="Availability topics against the database, seat by seat then the counts, "
                    "for every event on sale.")
def reconcile_on_sale_job() -> None:
    reconcile_on_sale_op()


reconcile_on_sale_schedule = dg.ScheduleDefinition(
    name="reconcile_on_sale_schedule", job=reconcile_on_sale_job, cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Reconciles the events on sale every 15 minutes.")


def partition_changes(existing: Sequence[str], events: Sequence[int]) -> tuple[list[str], list[str]]:
    """(partitions to add, partitions to delete) so that they follow the events table (pure)."""
    want = {str(e) for e in events}
    have = set(existing)
    return sorted(want - have, key=int), sorted(have - want, key=int)


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Keeps the ticketing_events partitions equal to the events table.")
def events_partitions_sensor(context: dg.SensorEvaluationContext,
                             seatflow: SeatflowResource) -> dg.SensorResult:
    try:
        with psycopg.connect(seatflow.settings().pg_dsn(), connect_timeout=10) as conn:
            events = [r[0] for r in conn.execute("SELECT event_id FROM ticketing.events")]
    except psycopg.Error as e:
        return dg.SensorResult(skip_reason=f"ticketing host unreachable: {e}")
    add, delete = partition_changes(
        context.instance.get_dynamic_partitions(events_partitions.name or ""), events)
    if not add and not delete:
        return dg.SensorResult(skip_reason=f"{len(events)} event partitions, up to date")
    requests: list = []
    if add:
        requests.append(events_partitions.build_add_request(add))
    if delete:
        requests.append(events_partitions.build_delete_request(delete))
    return dg.SensorResult(dynamic_partitions_requests=requests)


def drifted_events(tags: Mapping[str, str]) -> list[int]:
    """The events a reconcile_on_sale run found drifted, from its tags (pure)."""
    return [int(e) for e in tags.get(DRIFTED_TAG, "").split(",") if e.strip()]


@dg.sensor(job=backfill_event_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="After each reconcile_on_sale run, backfills every event that drifted "
                       "(with Debezium) unless a backfill of it is running.")
def drift_backfill_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    finished = instance.get_runs(dg.RunsFilter(
        job_name=reconcile_on_sale_job.name,
        statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]), limit=1)
    if not finished or finished[0].run_id == context.cursor:
        return dg.SensorResult(skip_reason="no reconciliation run since the last look")
    run = finished[0]
    partitions = set(instance.get_dynamic_partitions(events_partitions.name or ""))
    requests = []
    notes = []
    for event_id in drifted_events(run.tags):
        key = str(event_id)
        if key not in partitions:
            notes.append(f"event {key} has no partition yet")
            continue
        active = instance.get_runs(dg.RunsFilter(
            job_name=backfill_event_job.name, statuses=ACTIVE_RUN_STATUSES,
            tags={"dagster/partition": key}), limit=1)
        if active:
            notes.append(f"event {key}: backfill {active[0].run_id[:8]} is running")
            continue
        requests.append(dg.RunRequest(run_key=f"{run.run_id}:{key}", partition_key=key,
                                      tags={"seatflow/reconcile-run": run.run_id}))
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(notes) or "no drift", cursor=run.run_id)
    return dg.SensorResult(run_requests=requests, cursor=run.run_id)


@dg.sensor(job=backfill_event_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="After a stream run failed because changes were trimmed before they were "
                       "processed (retention), backfills every event from the database.")
def offsets_lost_backfill_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    failed = instance.get_runs(dg.RunsFilter(
        job_name=availability_stream.name, statuses=[dg.DagsterRunStatus.FAILURE],
        tags={OFFSETS_LOST_TAG: "all"}), limit=1)
    if not failed or failed[0].run_id == context.cursor:
        return dg.SensorResult(skip_reason="no stream run lost offsets since the last look")
    run = failed[0]
    requests = [dg.RunRequest(run_key=f"{run.run_id}:{key}", partition_key=key,
                              tags={"seatflow/offsets-lost-run": run.run_id})
                for key in sorted(instance.get_dynamic_partitions(events_partitions.name or ""))]
    return dg.SensorResult(run_requests=requests, cursor=run.run_id)


defs = dg.Definitions(
    jobs=[backfill_event_job, reconcile_on_sale_job],
    schedules=[reconcile_on_sale_schedule],
    sensors=[events_partitions_sensor, drift_backfill_sensor, offsets_lost_backfill_sensor],
)
