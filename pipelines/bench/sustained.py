"""`seatflow bench sustained`: the highest on-sale rate that capture and processing keep up
with for minutes, with the lag curve of each rate tried.

Each step runs the on-sale at one rate (split over several simulator processes at nice 10:
one process tops out below the rates asked for; buyers mostly release, so minutes of it do
not sell out) and samples every few seconds:
- the rate committed in the ticketing host (seat_inventory's row changes, from PostgreSQL's
  statistics) and the rate published to seat-availability;
- the staleness of what is published: now minus its source commit time, p99 and max;
- the processor group's lag on the CDC topic.
A step keeps up when the generator made its rate, the published rate matched it, and the
staleness stayed bounded (not growing from the first samples to the last).
"""

from __future__ import annotations

import resource
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import TopicPartition

from pipelines.avro import AvroDecoder, registry_client
from pipelines.deploy import wait_caught_up
from pipelines.host.load import OnSale
from pipelines.kafka import clients
from pipelines.kafka.groups import end_offsets, group_lag
from pipelines.kafka.reading import next_records
from pipelines.kafka.topics import SEAT_AVAILABILITY, cdc_topic
from pipelines.processor.config import GROUP_ID
from pipelines.settings import Settings
from pipelines.stats import percentile

__all__ = ["StepReport", "SustainedReport", "Window", "bench_sustained", "keeps_up",
           "row_changes"]

# Staleness past which a step does not keep up, whatever its trend: fans would see it.
MAX_STALENESS_MS = 5_000.0
# The published rate may trail the committed one this much (a window's edges cut both).
RATE_SLACK = 0.95


@dataclass
class Window:
    at_s: float  # from the step's start, at the window's end
    committed_per_s: float
    published_per_s: float
    staleness_p99_ms: float
    staleness_max_ms: float
    processor_lag: int


@dataclass
class StepReport:
    rate_target: float
    processes: int
    committed_per_s: float  # over the step, after its settling windows
    published_per_s: float
    staleness_p99_ms: float
    kept_up: bool
    why: str
    simulator_cpu_percent: float  # of one core, all simulator processes together
    windows: list[Window] = field(default_factory=list)
    batch: int = 1  # the host's buyers' statements per transaction (group commit)


@dataclass
class SustainedReport:
    step_s: float
    window_s: float
    highest_sustained_rate: float | None  # committed changes/s of the best step that kept up
    steps: list[StepReport]


def keeps_up(windows: Sequence[Window], rate_target: float, *, settle: int = 2,
             ) -> tuple[bool, str]:
    """Whether a step kept up (pure): after `settle` windows, the committed rate reached 90 %
    of the target (else the generator, not the pipeline, is the limit), the published rate
    matched the committed one, and staleness stayed under MAX_STALENESS_MS without growing
    (the last quarter's worst p99 at most twice the first quarter's, or under a second)."""
    kept = list(windows[settle:])
    if len(kept) < 4:
        return False, "too few windows to tell"
    committed = sum(w.committed_per_s for w in kept) / len(kept)
    published = sum(w.published_per_s for w in kept) / len(kept)
    if committed < 0.9 * rate_target:
        return False, f"the generator made {committed:,.0f} of {rate_target:,.0f} changes/s"
    if published < RATE_SLACK * committed:
        return False, f"published {published:,.0f} of {committed:,.0f} changes/s committed"
    worst = max(w.staleness_p99_ms for w in kept)
    if worst > MAX_STALENESS_MS:
        return False, f"staleness p99 reached {worst:,.0f} ms"
    quarter = max(1, len(kept) // 4)
    first = max(w.staleness_p99_ms for w in kept[:quarter])
    last = max(w.staleness_p99_ms for w in kept[-quarter:])
    if last > max(2 * first, 1_000.0):
        return False, f"staleness p99 grew from {first:,.0f} to {last:,.0f} ms"
    return True, f"staleness p99 at most {worst:,.0f} ms"


def row_changes(settings: Settings) -> int:
    """seat_inventory's rows inserted, updated and deleted so far (PostgreSQL's statistics,
    flushed about every second)."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        row = conn.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
                           " WHERE schemaname = 'ticketing' AND relname = 'seat_inventory'"
                           ).fetchone()
    return int(row[0]) if row else 0


def _children_cpu_seconds() -> float:
    """CPU of this process's ended children (the on-sale's processes, once joined)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _step(settings: Settings, rate: float, *, step_s: float, window_s: float, processes: int,
          batch: int, say: Callable[[str], None]) -> StepReport:
    decoder = AvroDecoder(registry_client(settings),
                          projection={"source_committed_at": None, "snapshot": None})
    consumer = clients.consumer(settings, group_id=f"bench-sustained-{uuid.uuid4()}", **{
        "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(SEAT_AVAILABILITY, p, off)
                     for p, off in end_offsets(settings, SEAT_AVAILABILITY).items()])
    cdc = cdc_topic(settings, "seat_inventory")
    onsale = OnSale(settings, rate=rate, seed=int(rate), processes=processes, batch=batch)
    cpu0 = _children_cpu_seconds()
    windows: list[Window] = []
    started = time.monotonic()
    changes0 = row_changes(settings)
    try:
        while time.monotonic() - started < step_s:
            onsale.keep_going()
            window_end = time.monotonic() + window_s
            published = 0
            staleness: list[float] = []
            while time.monotonic() < window_end:
                onsale.keep_going()
                for msg in next_records(consumer, 5000, 0.2):
                    if msg.error() is not None or msg.value() is None:
                        continue
                    value = decoder.decode(msg.value())
                    if value["snapshot"]:
                        continue
                    published += 1
                    staleness.append(time.time() * 1000
                                     - value["source_committed_at"].timestamp() * 1000)
            changes = row_changes(settings)
            staleness.sort()
            window = Window(round(time.monotonic() - started, 1),
                            round((changes - changes0) / window_s),
                            round(published / window_s), percentile(staleness, 0.99),
                            round(staleness[-1], 1) if staleness else 0.0,
                            group_lag(settings, GROUP_ID, cdc))
            changes0 = changes
            windows.append(window)
            say(f"{rate:,.0f}/s  {window.at_s:5.0f} s: committed {window.committed_per_s:,.0f}/s,"
                f" published {window.published_per_s:,.0f}/s, staleness p99 "
                f"{window.staleness_p99_ms:,.0f} ms, processor lag {window.processor_lag:,}")
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
        onsale.stop()
    cpu = _children_cpu_seconds() - cpu0
    kept_up, why = keeps_up(windows, rate)
    kept = windows[2:] or windows
    return StepReport(rate, processes,
                      round(sum(w.committed_per_s for w in kept) / len(kept)),
                      round(sum(w.published_per_s for w in kept) / len(kept)),
                      max(w.staleness_p99_ms for w in kept), kept_up, why,
                      round(100 * cpu / max(elapsed, 1e-9), 1), windows, batch)


def bench_sustained(settings: Settings, *, rates: Sequence[float], step_s: float = 300,
                    window_s: float = 5, processes: int = 2, batch: int = 1,
                    stop_at_first_miss: bool = True,
                    say: Callable[[str], None] = lambda _: None) -> SustainedReport:
    """Run each rate for step_s (lowest first) and report the highest that kept up."""
    steps: list[StepReport] = []
    for rate in sorted(rates):
        say("waiting for the pipeline to publish everything committed so far")
        wait_caught_up(settings, timeout_s=600)
        say(f"on-sale at {rate:,.0f} changes/s over {processes} simulator processes for "
            f"{step_s:.0f} s")
        step = _step(settings, rate, step_s=step_s, window_s=window_s, processes=processes,
                     batch=batch, say=say)
        steps.append(step)
        say(f"{rate:,.0f}/s: {'kept up' if step.kept_up else 'did not keep up'} ({step.why})")
        if not step.kept_up and stop_at_first_miss:
            break
    best = [s.committed_per_s for s in steps if s.kept_up]
    return SustainedReport(step_s, window_s, max(best) if best else None, steps)
