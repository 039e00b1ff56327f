"""`seatflow bench chaos`: the on-sale, the faults one at a time, the catch-up and the report."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping

import psutil

from pipelines.chaos.processes import Injector, connector_running, find_processor
from pipelines.chaos.report import (
    DEFAULT_FAULTS,
    ChaosReport,
    FaultResult,
    fault_schedule,
    parse_faults,
    summarise_kinds,
)
from pipelines.chaos.tail import VersionTail, records_since, seat_versions, version_sum
from pipelines.deploy import wait_caught_up
from pipelines.host.load import OnSale
from pipelines.kafka.groups import end_offsets
from pipelines.kafka.topics import ANOMALIES, DEAD_LETTER, SEAT_AVAILABILITY
from pipelines.polling import PollTimeoutError, poll
from pipelines.reconcile import reconcile_events
from pipelines.settings import Settings
from pipelines.stack import health


def _every(say: Callable[[str], None], seconds: float) -> Callable[[str], None]:
    """`say`, at most once per `seconds` (waits report progress every second)."""
    last = [0.0]

    def throttled(text: str) -> None:
        if time.monotonic() - last[0] >= seconds:
            last[0] = time.monotonic()
            say(text)

    return throttled


def _wait_ready(settings: Settings, *, timeout_s: float, say: Callable[[str], None]) -> None:
    def probe() -> str | None:
        for service in health.CHECKS:
            problem = health.check(service, settings)
            if problem is not None:
                return f"{service}: {problem}"
        if not connector_running(settings):
            return f"connector {settings.connector_name} not running"
        if find_processor() is None:
            return "no processor process"
        return None

    try:
        poll(probe, until=lambda problem: problem is None, timeout_s=timeout_s)
    except PollTimeoutError as e:
        raise RuntimeError(f"the pipeline is not ready: {e.last}") from e


def bench_chaos(settings: Settings, *, rate: float = 2000, changes: int = 100_000,
                duration: float | None = None, faults: Mapping[str, int] | None = None,
                seed: int = 1, min_gap_s: float = 5.0, heal_timeout_s: float = 120.0,
                settle_s: float = 10.0, max_seconds: float = 3600.0, hold_ttl: float = 15.0,
                catch_up_timeout_s: float = 600.0,
                start_processor: bool = True,
                say: Callable[[str], None] = lambda _: None) -> ChaosReport:
    """Run the on-sale with its faults, wait until the pipeline has caught up, and report."""
    from pipelines import stack

    mix = dict(faults if faults is not None else parse_faults(DEFAULT_FAULTS))
    started_processor = False
    if find_processor() is None:
        if not start_processor:
            raise RuntimeError("no processor runs (seatflow stack ... or Dagster's stream run)")
        say("starting the processor under the stack's supervisord")
        stack.start_app(settings, "processor")
        started_processor = True
    try:
        _wait_ready(settings, timeout_s=300, say=say)
        say("waiting until everything committed so far is published")
        wait_caught_up(settings, timeout_s=600, say=_every(say, 10))
        before = seat_versions(settings)
        base_sum = sum(before.values())
        start_offsets = end_offsets(settings, SEAT_AVAILABILITY)
        side_starts = {t: end_offsets(settings, t) for t in (ANOMALIES, DEAD_LETTER)}
        since_ms = int(time.time() * 1000)
        tail = VersionTail(settings, start_offsets)
        tail.start()
        span = duration if duration else changes / max(rate, 1.0)
        schedule = fault_schedule(mix, span, seed=seed)
        say(f"on-sale at {rate:.0f} changes/s; {len(schedule)} faults "
            f"({', '.join(f'{k} x{n}' for k, n in mix.items()) or 'none'})")
        injector = Injector(settings, tail)
        onsale = OnSale(settings, rate=rate, seed=seed, hold_ttl=hold_ttl)
        results: list[FaultResult] = []
        t0 = time.time()
        current: tuple[FaultResult, int | None, float] | None = None
        next_allowed = t0
        # The first fault, like every later one, waits for a fresh stream: a pipeline started
        # moments before still drains what it found, and a fault there measures that drain.
        warmed = False
        committed = 0
        last_count = 0.0
        pending = list(schedule)
        try:
            while True:
                now = time.time()
                onsale.keep_going()
                if now - last_count >= 2:
                    last_count = now
                    total = version_sum(settings)
                    if total is not None:
                        committed = total - base_sum
                fresh = not warmed and tail.fresh_since(t0)
                if not warmed and (fresh or now - t0 > heal_timeout_s):
                    warmed = True
                    say(f"{now - t0:7.1f} s  the stream is "
                        f"{'fresh' if fresh else 'NOT fresh, faults start anyway'}")
                if current is not None:
                    result, pid, at = current
                    # Healed: flowing again. Then fresh: the backlog drained, and only then the
                    # next fault, so that each one's heal and staleness are its own.
                    if result.healed_s is None and injector.healed(result.kind, pid, at):
                        result.healed_s = round(time.time() - at, 2)
                        say(f"{result.at_s:7.1f} s  {result.kind} healed in {result.healed_s:.1f} s")
                    if result.healed_s is not None and tail.fresh_since(at):
                        result.fresh_s = round(time.time() - at, 2)
                        say(f"{result.at_s:7.1f} s  {result.kind}: fresh again after "
                            f"{result.fresh_s:.1f} s")
                        current, next_allowed = None, time.time() + min_gap_s
                    elif now - at > heal_timeout_s:
                        what = "fresh again" if result.healed_s is not None else "healed"
                        say(f"{result.at_s:7.1f} s  {result.kind} NOT {what} after "
                            f"{heal_timeout_s:.0f} s")
                        current, next_allowed = None, now + min_gap_s
                elif warmed and pending and now - t0 >= pending[0].at_s and now >= next_allowed:
                    fault = pending.pop(0)
                    at = time.time()
                    try:
                        target, pid = injector.inject(fault.kind)
                    except (RuntimeError, OSError, psutil.Error, subprocess.SubprocessError) as e:
                        results.append(FaultResult(fault.kind, round(at - t0, 2), "", None,
                                                   error=str(e)))
                        say(f"{at - t0:7.1f} s  {fault.kind}: not injected: {e}")
                        next_allowed = at + min_gap_s
                        continue
                    result = FaultResult(fault.kind, round(at - t0, 2), target, None)
                    results.append(result)
                    current = (result, pid, at)
                    say(f"{result.at_s:7.1f} s  {fault.kind}: {target} "
                        f"({committed:,} changes committed so far)")
                enough = committed >= changes or (duration is not None and now - t0 >= duration)
                if enough and not pending and current is None and now >= next_allowed + settle_s:
                    break
                if now - t0 > max_seconds:
                    say(f"stopping after {max_seconds:.0f} s with {len(pending)} faults left")
                    break
                if tail.error is not None:
                    raise RuntimeError(f"the seat-availability reader failed: {tail.error}")
                time.sleep(0.2)
        finally:
            onsale.stop()
        t_end = time.time()
        say(f"on-sale over after {t_end - t0:.0f} s; waiting for the pipeline to catch up")
        catch_up: float | None = None
        try:
            wait_caught_up(settings, timeout_s=catch_up_timeout_s, say=_every(say, 10))
            ends = end_offsets(settings, SEAT_AVAILABILITY)
            try:
                poll(lambda: tail.reached(ends), until=bool, timeout_s=120, every_s=0.2)
            except PollTimeoutError as e:
                raise TimeoutError(f"the report's reader of {SEAT_AVAILABILITY} did not reach "
                                   "its end within 120 s") from e
            catch_up = round(time.time() - t_end, 1)
        except TimeoutError as e:
            say(f"not caught up: {e}")
        tail.stop.set()
        tail.join(30)
        after = seat_versions(settings)
        committed_versions, lost, lost_examples = tail.ledger.lost(before, after)
        say("reconciling the events with the database")
        events = sorted({e for e, _ in after})
        reconciliations = reconcile_events(settings, events)
        anomalies = records_since(settings, ANOMALIES, side_starts[ANOMALIES], since_ms)
        dead = records_since(settings, DEAD_LETTER, side_starts[DEAD_LETTER], since_ms)
    finally:
        if started_processor:
            stack.stop_app(settings, "processor")
    injected = [r for r in results if not r.error]
    # Staleness per fault: from its injection until the next fault (or the on-sale's end).
    starts = [t0 + r.at_s for r in injected]
    windows = list(zip(starts, [*starts[1:], t_end], strict=True))
    for r, stale in zip(injected, tail.staleness(windows), strict=True):
        r.staleness_s = stale
    return ChaosReport(
        rate_target=rate,
        seconds=round(t_end - t0, 1),
        changes_committed=committed_versions,
        changes_published=len(tail.commits),
        versions_lost=lost,
        versions_duplicated=tail.ledger.duplicated,
        seat_differences=sum(len(r.seat_differences) for r in reconciliations.values()),
        count_differences=sum(len(r.count_differences) for r in reconciliations.values()),
        anomalies=anomalies,
        dead_letters=dead,
        catch_up_s=catch_up,
        faults=results,
        kinds=summarise_kinds(injected),
        lost_examples=lost_examples,
        duplicate_examples=tail.ledger.duplicate_examples,
        reconciliation=[r.summary() for r in reconciliations.values() if not r.passed],
        seed=seed,
    )
