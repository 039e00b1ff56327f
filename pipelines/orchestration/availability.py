"""The availability pipeline in Dagster: assets with lineage, the stream, catch-up, checks."""

import json
import threading
import time

import dagster as dg
from confluent_kafka import KafkaException

from pipelines.host import CAPTURED_TABLES
from pipelines.kafka.groups import group_shares
from pipelines.kafka.topics import (
    ANOMALIES,
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    SECTION_AVAILABILITY,
    cdc_topic,
)
from pipelines.monitoring import (
    anomaly_counts,
    dead_letter_counts,
    freshness,
)
from pipelines.orchestration.resources import SeatflowResource
from pipelines.processor.config import GROUP_ID, ProcessorConfig
from pipelines.processor.engine import BatchStats
from pipelines.processor.runner import run_processor
from pipelines.processor.supervise import EXIT_OFFSETS_LOST, supervise_worker
from pipelines.reconcile import event_ids, reconcile_events
from pipelines.settings import Settings

TABLES = [t for t in CAPTURED_TABLES if t not in ("heartbeat", "debezium_signal")]
REFERENCE = ["events", "sections", "seats", "price_levels"]


def _table(t: str) -> dg.AssetKey:
    return dg.AssetKey(["ticketing", t])


def _cdc(t: str) -> dg.AssetKey:
    return dg.AssetKey(["cdc", t])


SEAT = dg.AssetKey(["availability", "seat"])
SECTION = dg.AssetKey(["availability", "section"])
EVENT = dg.AssetKey(["availability", "event"])
DEAD = dg.AssetKey(["availability", "dead_letter"])
ANOMALY = dg.AssetKey(["availability", "anomalies"])

assets = [
    *[dg.AssetSpec(_table(t), group_name="ticketing_host", kinds={"postgres"},
                   description=f"Table ticketing.{t} of the ticketing host") for t in TABLES],
    *[dg.AssetSpec(_cdc(t), deps=[_table(t)], group_name="cdc", kinds={"kafka", "debezium"},
                   description=f"Debezium change events of ticketing.{t} (Avro)") for t in TABLES],
    dg.AssetSpec(SEAT, deps=[_cdc("seat_inventory"), *[_cdc(t) for t in REFERENCE]],
                 group_name="availability", kinds={"kafka"},
                 description=f"Compacted topic {SEAT_AVAILABILITY}: every seat's newest state"),
    dg.AssetSpec(SECTION, deps=[SEAT], group_name="availability", kinds={"kafka"},
                 description=f"Compacted topic {SECTION_AVAILABILITY}: open / held / sold per "
                             "section and price level, lowest open price"),
    dg.AssetSpec(EVENT, deps=[SEAT], group_name="availability", kinds={"kafka"},
                 description=f"Compacted topic {EVENT_AVAILABILITY}: totals per event"),
    dg.AssetSpec(DEAD, deps=[_cdc("seat_inventory")], group_name="availability", kinds={"kafka"},
                 description=f"Topic {DEAD_LETTER}: records that could not be read or written "
                             "at all, and why"),
    dg.AssetSpec(ANOMALY, deps=[_cdc("seat_inventory")], group_name="availability",
                 kinds={"kafka"},
                 description=f"Topic {ANOMALIES}: committed changes that broke a business rule "
                             "(published all the same), with the rule and the seat before and "
                             "after"),
]


PARTITIONS_TAG = "seatflow/partitions"
LAG_TAG = "seatflow/lag"
TAG_EVERY_S = 15.0


def _tag_partitions(context: dg.OpExecutionContext, settings: Settings, slot: int,
                    done: threading.Event) -> None:
    """Keep the run's tags saying which partitions its instance owns and their lag, as the
    consumer group has them: the Dagster UI shows them with the run."""
    me = ProcessorConfig.of(settings, slot=slot).transactional_id
    topic = cdc_topic(settings, "seat_inventory")
    shown: dict[str, str] = {}
    while not done.wait(TAG_EVERY_S):
        try:
            share = next((s for s in group_shares(settings, GROUP_ID, topic)
                          if s.instance == me), None)
        except KafkaException as e:  # the broker restarting: the next round tells
            context.log.debug(f"partition tags: {e}")
            continue
        tags = ({PARTITIONS_TAG: ",".join(map(str, share.partitions)) or "none",
                 LAG_TAG: str(share.lag)} if share is not None
                else {PARTITIONS_TAG: "not in the group", LAG_TAG: "-"})
        if tags != shown:
            context.instance.add_run_tags(context.run_id, tags)
            shown = tags


def processor_settings(settings: Settings) -> Settings:
    """Least privilege for the processor runs Dagster launches (Dagster itself logs in as
    admin): the processor's own Kafka principal, and the registry's reader, since the processor
    only looks its schemas up; as the stack's supervisord logs its processor in (APP_LOGINS)."""
    return settings.as_principal("processor").registry_login_as("reader")


def _process(context: dg.OpExecutionContext, settings: Settings, *, until_end: bool,
             slot: int = 0) -> None:
    settings = processor_settings(settings)
    if not until_end:
        # The stream runs as a supervised worker process with a warm standby: a crash is
        # taken over within a second or two, by this run, instead of failing it and waiting
        # for the keeper.
        done = threading.Event()
        threading.Thread(target=_tag_partitions, args=(context, settings, slot, done),
                         daemon=True, name="partition-tags").start()
        try:
            code = supervise_worker(settings, ["--slot", str(slot)], should_stop=lambda: False,
                                    say=context.log.warning)
        finally:
            done.set()
        if code == EXIT_OFFSETS_LOST:
            # The tag is how offsets_lost_backfill_sensor finds the events to backfill.
            context.instance.add_run_tags(context.run_id, {OFFSETS_LOST_TAG: "all"})
            raise dg.Failure(
                description="Committed offsets of the CDC topics were trimmed by retention before "
                            "the processor read them: changes are lost for the availability. "
                            "The worker moved the group to the log start (the next run streams "
                            "again) and offsets_lost_backfill_sensor backfills every event; the "
                            "worker's log names the partitions.")
        return
    last_log = [0.0]

    def report(batch: BatchStats) -> None:
        if time.monotonic() - last_log[0] >= 10:  # a line every 10 s, not every batch
            last_log[0] = time.monotonic()
            context.log.info(
                f"batch in={batch.records_in} out={batch.records_out} dup={batch.duplicates} "
                f"dead={batch.dead_lettered} lag={batch.lag} p50={batch.latency_p50_ms:.0f} ms")

    stop = threading.Event()
    stats = run_processor(settings, should_stop=stop.is_set, until_end=until_end, on_batch=report)
    context.log.info(f"stopped: {json.dumps(stats.__dict__, default=str)}")


class StreamConfig(dg.Config):
    # Which instance of the scaled-out processor: its transactional id and group member id.
    slot: int = 0


@dg.op(description="Runs one instance (slot) of the availability processor until the run is "
                   "terminated; the consumer group gives it its share of the partitions.")
def stream_availability(context: dg.OpExecutionContext, config: StreamConfig,
                        seatflow: SeatflowResource) -> None:
    _process(context, seatflow.settings(), until_end=False, slot=config.slot)


@dg.op(description="Processes the CDC topics up to their current end, then stops.")
def catch_up_availability(context: dg.OpExecutionContext, seatflow: SeatflowResource) -> None:
    _process(context, seatflow.settings(), until_end=True)


@dg.job(description="Long-running: publishes availability until the run is terminated "
                    "(finishing or aborting its open transaction).",
        tags={"seatflow/role": "stream"})
def availability_stream() -> None:
    stream_availability()


@dg.job(description="Bounded: processes the CDC topics to their current end, then ends.",
        tags={"seatflow/role": "catchup"})
def availability_catchup() -> None:
    catch_up_availability()


# On a stream run that failed because changes were trimmed before they were processed.
OFFSETS_LOST_TAG = "seatflow/offsets-lost"
# A run in one of these is still running (a canceling one has not let go of its work yet): the
# sensors start no second run of the same job (and slot or partition) while one is. The one list
# for every job here.
ACTIVE_RUN_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                       dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                       dg.DagsterRunStatus.CANCELING]
# Bounded: never more than 10 minutes between tries. The first failure in a row restarts at
# once (the run's own worker supervision already absorbed plain crashes).
BACKOFF_S = [0, 0, 10, 30, 60, 120, 300, 600]
# A stream run never succeeds (it runs until it fails or is terminated): one that ran this long
# before failing was healthy, and its failure starts the count afresh.
HEALTHY_RUN_S = 120.0


def restart_delay(failures: int) -> int:
    """Seconds to wait before starting the stream again after `failures` failed runs in a row."""
    return BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]


def next_start_in(recent: list[tuple[bool, float | None, float | None]],
                  now: float) -> tuple[int, float]:
    """From the newest runs first, (failed, start time, end time): the failures in a row since
    the last healthy run, and the seconds to wait before starting the stream again (0: now)."""
    failures = 0
    for failed, started, ended in recent:
        if not failed:
            break
        failures += 1
        if started is not None and ended is not None and ended - started >= HEALTHY_RUN_S:
            break  # it ran healthily before it failed: older failures do not count
    ended = recent[0][2] if recent else None
    if failures == 0 or ended is None:
        return failures, 0.0
    return failures, max(restart_delay(failures) - (now - ended), 0.0)


SLOT_TAG = "seatflow/slot"


@dg.sensor(job=availability_stream, minimum_interval_seconds=15,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Keeps one availability_stream run alive per processor instance (slot, "
                       "SEATFLOW_PROCESSOR_INSTANCES of them); restarts a failed one with a "
                       "bounded backoff.")
def availability_stream_keeper(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    requests, skipped = [], []
    for slot in range(Settings().processor_instances):
        tags = {SLOT_TAG: str(slot)}
        running = instance.get_runs(dg.RunsFilter(
            job_name=availability_stream.name, statuses=ACTIVE_RUN_STATUSES, tags=tags), limit=1)
        if running:
            skipped.append(f"slot {slot}: run {running[0].run_id[:8]} is alive")
            continue
        records = instance.get_run_records(
            dg.RunsFilter(job_name=availability_stream.name, tags=tags), limit=len(BACKOFF_S))
        recent = [(r.dagster_run.status == dg.DagsterRunStatus.FAILURE, r.start_time,
                   r.end_time) for r in records]
        failures, wait = next_start_in(recent, time.time())
        if wait > 0:
            skipped.append(f"slot {slot}: {failures} failed run(s) in a row; next try in "
                           f"{wait:.0f} s")
            continue
        requests.append(dg.RunRequest(
            run_key=f"stream-{slot}-{int(time.time())}",
            run_config={"ops": {"stream_availability": {"config": {"slot": slot}}}},
            tags={**tags, "seatflow/restart-after-failures": str(failures)}))
    return dg.SensorResult(run_requests=requests, skip_reason=None if requests else
                           "; ".join(skipped))


@dg.schedule(job=availability_catchup, cron_schedule="*/30 * * * *",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Catch up every 30 minutes, for deployments without a stream run.")
def availability_catchup_schedule(context: dg.ScheduleEvaluationContext) -> dg.SkipReason | dg.RunRequest:
    running = context.instance.get_runs(
        dg.RunsFilter(job_name=availability_stream.name, statuses=ACTIVE_RUN_STATUSES), limit=1)
    if running:  # the stream holds the transactional id; a second processor would fence it
        return dg.SkipReason("availability_stream is running")
    return dg.RunRequest()


@dg.asset_check(asset=SEAT, description="Consumer lag and how far the published availability "
                "trails the database's newest change.", blocking=False)
def availability_freshness(seatflow: SeatflowResource) -> dg.AssetCheckResult:
    f = freshness(seatflow.settings())
    stale = f.staleness_ms
    ok = f.lag <= 1000 and stale is not None and stale <= 5000
    return dg.AssetCheckResult(passed=ok, metadata={
        "consumer_lag": f.lag, "staleness_ms": -1 if stale is None else stale})


@dg.asset_check(asset=DEAD, description="Share of changes dead-lettered (warns above 1%).")
def dead_letter_rate(seatflow: SeatflowResource) -> dg.AssetCheckResult:
    dead, published = dead_letter_counts(seatflow.settings())
    rate = dead / max(dead + published, 1)
    return dg.AssetCheckResult(passed=rate <= 0.01, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"dead_letters": dead, "published": published,
                                         "rate": round(rate, 6)})


@dg.asset_check(asset=ANOMALY, description="Share of published changes that broke a business "
                "rule (warns above 1%): the ticketing host commits what its own rules forbid.")
def anomaly_rate(seatflow: SeatflowResource) -> dg.AssetCheckResult:
    anomalies, published = anomaly_counts(seatflow.settings())
    rate = anomalies / max(published, 1)
    return dg.AssetCheckResult(passed=rate <= 0.01, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"anomalies": anomalies, "published": published,
                                         "rate": round(rate, 6)})


@dg.asset_check(asset=SECTION, description="Every event's availability equals the database's: "
                "seat by seat, then section and event counts (differences must persist).")
def availability_reconciliation(seatflow: SeatflowResource) -> dg.AssetCheckResult:
    settings = seatflow.settings()
    results = reconcile_events(settings, event_ids(settings)).values()
    differences = sum(len(r.seat_differences) + len(r.count_differences) for r in results)
    return dg.AssetCheckResult(passed=differences == 0, metadata={
        "differences": differences,
        "report": dg.MetadataValue.md("\n\n".join(r.report() for r in results) or "no events")})


checks = [availability_freshness, dead_letter_rate, anomaly_rate, availability_reconciliation]
availability_checks_job = dg.define_asset_job(
    "availability_checks", selection=dg.AssetSelection.checks(*checks),
    description="Freshness, dead-letter and anomaly rates and reconciliation of the "
                "availability topics.")
availability_checks_schedule = dg.ScheduleDefinition(
    job=availability_checks_job, cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING)

defs = dg.Definitions(
    assets=assets,
    asset_checks=checks,
    jobs=[availability_stream, availability_catchup, availability_checks_job],
    sensors=[availability_stream_keeper],
    schedules=[availability_catchup_schedule, availability_checks_schedule],
)
