"""Several processor instances share the CDC partitions through their consumer group: through
a kill, an added instance and a graceful stop every committed version is published once, and
the availability equals the database; a second instance of one slot fences the first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from pipelines.chaos import VersionTail, seat_versions
from pipelines.cli.stack_cmd import app as stack_app
from pipelines.deploy import wait_caught_up
from pipelines.host.seed import seed_host
from pipelines.host.simulate import run_onsale
from pipelines.kafka.groups import end_offsets, group_members, group_shares
from pipelines.kafka.topics import SEAT_AVAILABILITY, cdc_topic
from pipelines.processor.config import GROUP_ID, ProcessorConfig, ProcessorError
from pipelines.processor.runner import run_processor
from pipelines.processor.supervise import WORKER_MODULE, settings_environment
from pipelines.reconcile import reconcile_events
from pipelines.settings import Settings
from tests.integration.conftest import ProcessorThread, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def events(pipeline: Settings) -> list[int]:
    """Four events on sale: four partitions of the six carry changes."""
    seed_host(pipeline, events=4)
    with psycopg.connect(pipeline.pg_dsn()) as conn:
        rows = conn.execute("SELECT event_id FROM ticketing.events WHERE status = 'on_sale'"
                            " ORDER BY event_id").fetchall()
    return [r[0] for r in rows]


class Worker:
    """`python -m pipelines.processor.worker --slot N`: one instance, as the stack runs it."""

    def __init__(self, settings: Settings, slot: int) -> None:
        self.slot = slot
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, "--slot", str(slot)],
            env={**os.environ, **settings_environment(settings)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(60)


@pytest.fixture()
def workers(pipeline: Settings) -> Iterator[dict[int, Worker]]:
    running: dict[int, Worker] = {}
    yield running
    for worker in running.values():
        worker.stop()


def _onsale(settings: Settings, events: list[int], seconds: float) -> threading.Thread:
    thread = threading.Thread(target=run_onsale, args=(settings,), daemon=True, kwargs=dict(
        rate=400, duration=seconds, events=events, seed=7, hold_ttl=5))
    thread.start()
    return thread


def test_instances_come_and_go_during_an_onsale_and_every_version_is_published_once(
        pipeline: Settings, events: list[int], workers: dict[int, Worker]) -> None:
    settings = pipeline
    run_processor(settings, should_stop=lambda: False, until_end=True)  # the seeding, first
    before = seat_versions(settings)
    tail = VersionTail(settings, end_offsets(settings, SEAT_AVAILABILITY))
    tail.start()
    for slot in (0, 1, 2):
        workers[slot] = Worker(settings, slot)
    wait_for(lambda: group_members(settings, GROUP_ID) == 3, timeout=120,
             what="three instances in the group")
    _assert_shares_cover_the_topic(settings, {f"{GROUP_ID}-{slot}" for slot in (0, 1, 2)})
    onsale = _onsale(settings, events, 45)
    time.sleep(10)
    workers[2].stop(signal.SIGKILL)  # its partitions go to the others after the session timeout
    time.sleep(10)
    workers[3] = Worker(settings, 3)  # a new instance takes a share
    wait_for(lambda: group_members(settings, GROUP_ID) == 3, timeout=120,
             what="the added instance in the group")
    time.sleep(5)
    workers[0].stop()  # gracefully: it ends its transaction, its partitions move at once
    onsale.join(120)
    wait_caught_up(settings, timeout_s=300)
    after = seat_versions(settings)
    wait_for(lambda: tail.reached(end_offsets(settings, SEAT_AVAILABILITY)),
             timeout=60, what="the reader at the end of seat-availability")
    tail.stop.set()
    tail.join(10)
    assert tail.error is None
    committed, lost, examples = tail.ledger.lost(before, after)
    assert committed > 1000, "the on-sale committed too little to tell"
    assert (lost, examples) == (0, [])
    assert (tail.ledger.duplicated, tail.ledger.duplicate_examples) == (0, [])
    for event_id, result in reconcile_events(settings, events).items():
        assert result.passed, f"event {event_id}: {result.report()}"
    assert all(w.process.poll() is None for s, w in workers.items() if s in (1, 3))


def _assert_shares_cover_the_topic(settings: Settings, instances: set[str]) -> None:
    """What `seatflow stack status` shows: each instance with its own partitions, all covered."""
    topic = cdc_topic(settings, "seat_inventory")

    def settled() -> bool:
        shares = group_shares(settings, GROUP_ID, topic)
        owned = [p for share in shares for p in share.partitions]
        return ({share.instance for share in shares} == instances
                and sorted(owned) == list(range(settings.partitions)))

    wait_for(settled, timeout=60, what="the partitions shared out among " + ", ".join(instances))
    result = CliRunner().invoke(stack_app, ["status"])
    assert all(instance in result.output for instance in instances), result.output


def test_a_second_instance_of_a_slot_fences_the_first(pipeline: Settings,
                                                      events: list[int]) -> None:
    settings = pipeline
    run_processor(settings, should_stop=lambda: False, until_end=True)
    config = ProcessorConfig.of(settings, slot=5)
    with ProcessorThread(settings, config) as first:
        onsale = _onsale(settings, events, 15)
        with ProcessorThread(settings, config) as second:
            # The zombie's next commit is refused (its epoch is stale): it stops, unpublished.
            wait_for(lambda: first.error is not None, timeout=60, what="the first fenced")
            assert isinstance(first.error, ProcessorError), first.error
            assert "fenced" in str(first.error).lower(), first.error
            onsale.join(60)
            wait_caught_up(settings, timeout_s=300)
            assert second.error is None, second.error
    for event_id, result in reconcile_events(settings, events).items():
        assert result.passed, f"event {event_id}: {result.report()}"


def test_the_scale_bench_times_each_instance_count_and_every_instance_works(
        pipeline: Settings, events: list[int]) -> None:
    from pipelines.scale import bench_scale

    report = bench_scale(pipeline, changes=20_000, instances=(1, 2), membership=False,
                         timeout_s=300)
    assert [r.instances for r in report.rounds] == [1, 2]
    assert report.partitions == pipeline.partitions and report.partitions_with_changes >= 2
    for r in report.rounds:
        assert r.seconds > 0 and r.changes_per_s > 0, r
        # Every instance of the group took partitions and processed some of them, and together
        # all of it (a batch cut short by a rebalance is read again: at least all).
        assert len(r.cpu_s) == r.instances and all(n > 0 for n in r.changes_each), r
        assert sum(r.changes_each) >= report.changes, r
    assert report.rounds[0].ratio == 1.0
