"""The pure parts of `seatflow bench chaos`: the fault mix and schedule, which versions were
lost or duplicated, staleness, and the report's targets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.chaos import (
    DEFAULT_FAULTS,
    FAULT_KINDS,
    ChaosReport,
    FaultResult,
    ProcessRow,
    VersionLedger,
    fault_schedule,
    flowing_since,
    fresh_since,
    parse_faults,
    pick_processor,
    staleness_s,
    summarise_kinds,
    targets,
)

pytestmark = pytest.mark.unit


def test_the_default_mix_is_the_issues_target() -> None:
    assert parse_faults(DEFAULT_FAULTS) == {"processor": 20, "connect": 10, "kafka": 5,
                                            "registry": 5, "postgres": 3}


def test_parse_faults_sums_repeats_drops_zeros_and_refuses_unknown_kinds() -> None:
    assert parse_faults("kafka=2, kafka=1,processor,registry=0") == {"kafka": 3, "processor": 1}
    assert parse_faults("") == {}
    with pytest.raises(ValueError, match="unknown fault 'zookeeper'"):
        parse_faults("zookeeper=1")
    with pytest.raises(ValueError, match="whole number"):
        parse_faults("kafka=two")
    with pytest.raises(ValueError, match=">= 0"):
        parse_faults("kafka=-1")


def test_the_schedule_has_the_mix_in_time_order_within_the_span_and_repeats_by_seed() -> None:
    mix = parse_faults(DEFAULT_FAULTS)
    schedule = fault_schedule(mix, 600, seed=4)
    assert {k: n for k in FAULT_KINDS if (n := sum(f.kind == k for f in schedule))} == mix
    times = [f.at_s for f in schedule]
    assert times == sorted(times) and all(5 <= t <= 600 for t in times)
    assert fault_schedule(mix, 600, seed=4) == schedule
    assert fault_schedule(mix, 600, seed=5) != schedule
    # Spread out, not bunched at the start: some fault in every fifth of the span.
    assert {int((t - 5) // 119) for t in times} == {0, 1, 2, 3, 4}


def test_a_span_shorter_than_the_lead_in_still_schedules_every_fault() -> None:
    schedule = fault_schedule({"kafka": 2}, 1, seed=1)
    assert [f.kind for f in schedule] == ["kafka", "kafka"]
    assert all(f.at_s == 5 for f in schedule)


def test_every_committed_version_must_be_seen_once() -> None:
    ledger = VersionLedger()
    for version in (4, 5, 7):
        ledger.add(1, 10, version, snapshot=False)
    ledger.add(1, 11, 2, snapshot=False)
    before = {(1, 10): 3, (1, 11): 1, (1, 12): 6}
    after = {(1, 10): 8, (1, 11): 2, (1, 12): 6}
    committed, lost, examples = ledger.lost(before, after)
    assert committed == 6  # seat 10: 4..8, seat 11: 2, seat 12: none
    assert lost == 2 and examples == [(1, 10, 6), (1, 10, 8)]
    assert ledger.duplicated == 0


def test_a_version_published_twice_by_the_stream_is_a_duplicate_a_snapshot_restatement_is_not() -> None:
    ledger = VersionLedger()
    assert ledger.add(1, 10, 4, snapshot=False)
    assert not ledger.add(1, 10, 4, snapshot=True)  # a backfill restating it
    assert ledger.duplicated == 0
    assert not ledger.add(1, 10, 4, snapshot=False)
    assert ledger.duplicated == 1 and ledger.duplicate_examples == [(1, 10, 4)]
    # A version seen only in a snapshot record is not lost.
    ledger.add(2, 20, 9, snapshot=True)
    assert ledger.lost({(2, 20): 8}, {(2, 20): 9})[:2] == (1, 0)


# No deadline: what is checked is the count, and CI runs it beside a stack under load.
@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 40)), max_size=200),
       st.randoms(use_true_random=False))
def test_lost_and_duplicated_agree_with_a_plain_count(changes: list[tuple[int, int]],
                                                      rng: random.Random) -> None:
    # Seats get versions 1..n; a random part of them is delivered, some more than once.
    versions: dict[tuple[int, int], int] = {}
    for seat, bumps in changes:
        versions[(1, seat)] = versions.get((1, seat), 0) + bumps
    delivered = [(key, v) for key, n in versions.items() for v in range(1, n + 1)
                 if rng.random() < 0.9]
    delivered += rng.sample(delivered, len(delivered) // 10)
    rng.shuffle(delivered)
    ledger = VersionLedger()
    for (event, seat), v in delivered:
        ledger.add(event, seat, v, snapshot=False)
    committed, lost, _ = ledger.lost({}, versions)
    assert committed == sum(versions.values())
    assert lost == committed - len(set(delivered))
    assert ledger.duplicated == len(delivered) - len(set(delivered))


def _staleness(pairs: list[tuple[float, float]], start: float, end: float) -> float:
    pairs = sorted(pairs)
    commits = [c for c, _ in pairs]
    receipts = [r for _, r in pairs]
    longest = max((r - c for c, r in pairs), default=0.0)
    return staleness_s(commits, receipts, start, end, max_latency_s=longest)


def test_staleness_is_the_oldest_unseen_commit_at_its_worst_within_the_window() -> None:
    # Steady flow, 0.1 s each; then the changes committed at 12 and 13 s arrive at 20 s.
    pairs = [(t, t + 0.1) for t in range(10)] + [(12, 20), (13, 20)] + [(21, 21.1)]
    assert _staleness(pairs, 11, 25) == pytest.approx(8)  # 20 - 12
    # The window ends before the delivery: stale until its end.
    assert _staleness(pairs, 11, 15) == pytest.approx(3)
    # A window before the fault sees only the usual latency.
    assert _staleness(pairs, 0, 10) == pytest.approx(0.1)
    # A change committed before the window and delivered in it counts (fans waited for it).
    assert _staleness([(5, 30)], 20, 40) == pytest.approx(25)
    assert _staleness([], 0, 10) == 0.0


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 30)), max_size=60),
       st.floats(0, 120), st.floats(0, 60))
def test_staleness_matches_sampling_every_moment(raw: list[tuple[float, float]], start: float,
                                                 length: float) -> None:
    pairs = [(c, c + d) for c, d in raw]
    end = start + length
    # By definition: at each moment t, t minus the oldest commit not yet received.
    moments = [start + length * i / 400 for i in range(401)]
    moments += [r for _, r in pairs if start <= r <= end]
    sampled = max((t - min((c for c, r in pairs if c <= t < r), default=t) for t in moments),
                  default=0.0)
    assert _staleness(pairs, start, end) == pytest.approx(sampled, abs=length / 400 + 1e-6)


def _report(**changes: object) -> ChaosReport:
    faults = [FaultResult("processor", 10, "pid 1", 3.0, 2.5),
              FaultResult("processor", 40, "pid 2", 4.0, 4.5),
              FaultResult("kafka", 70, "pid 3", 25.0, 28.0)]
    report = ChaosReport(2000, 100, 1000, 1000, 0, 0, 0, 0, 0, 0, 12.0, faults=faults,
                         kinds=summarise_kinds(faults))
    for name, value in changes.items():
        setattr(report, name, value)
    return report


def test_kinds_summarise_the_slowest_heal_and_the_longest_staleness() -> None:
    kinds = {k.kind: k for k in _report().kinds}
    assert list(kinds) == ["processor", "kafka"]
    assert (kinds["processor"].count, kinds["processor"].healed_within_s,
            kinds["processor"].longest_staleness_s, kinds["processor"].met) == (2, 4.0, 4.5, True)
    assert kinds["kafka"].met


def test_targets_are_missed_by_a_loss_a_duplicate_a_difference_or_a_slow_heal() -> None:
    assert all(ok for _, ok in targets(_report()).values())
    assert not targets(_report(versions_lost=1))["versions_lost"][1]
    assert not targets(_report(versions_duplicated=2))["versions_duplicated"][1]
    assert not targets(_report(count_differences=1))["count_differences"][1]
    assert not targets(_report(catch_up_s=None))["catch_up_s"][1]
    slow = [FaultResult("processor", 10, "pid 1", 6.0), FaultResult("postgres", 30, "", None)]
    marks = targets(_report(kinds=summarise_kinds(slow)))
    assert not marks["heal processor"][1]  # 6 s > 5 s
    assert not marks["heal postgres"][1]  # never healed
    assert summarise_kinds(slow)[1].healed_within_s is None


def test_the_report_as_json_data_marks_its_targets() -> None:
    data = _report(versions_lost=3).as_dict()
    assert data["targets"]["versions_lost"] == {"target": "0", "met": False}
    assert data["kinds"][0]["met"] is True
    assert data["faults"][2]["healed_s"] == 25.0


def row(pid: int, cmdline: str, *, ppid: int = 1, started: float = 0.0) -> ProcessRow:
    return ProcessRow(pid, ppid, started, tuple(cmdline.split()))


PY = "/work/main/.venv/bin/python3"


def test_the_worker_is_killed_rather_than_the_process_that_supervises_it() -> None:
    rows = [row(10, f"{PY} -m pipelines.cli.main processor run"),
            row(11, f"{PY} -m pipelines.processor.worker --group seatflow", ppid=10, started=5),
            row(12, f"{PY} -m dagster api execute_run availability_stream", started=1)]
    assert pick_processor(rows) == 11


def test_without_a_worker_the_processor_command_or_a_dagster_stream_run_is_taken() -> None:
    assert pick_processor([row(20, f"{PY} /work/main/.venv/bin/seatflow processor run")]) == 20
    assert pick_processor([row(21, f"{PY} -m pipelines.cli.main processor run --until-end"),
                           row(22, f"{PY} -m dagster api execute_run {{availability_stream}}")]) == 21
    assert pick_processor([row(23, "dagster api execute_run {availability_stream ...}")]) == 23
    # A supervising `processor run` with a child of the same command: the child works.
    assert pick_processor([row(24, f"{PY} -m pipelines.cli.main processor run"),
                           row(25, f"{PY} -m pipelines.cli.main processor run", ppid=24,
                               started=3)]) == 25


def test_the_oldest_of_several_workers_and_never_a_bench_or_a_lookalike() -> None:
    rows = [row(30, f"{PY} -m pipelines.processor.worker", started=9),
            row(31, f"{PY} -m pipelines.processor.worker", started=2)]
    assert pick_processor(rows) == 31
    assert pick_processor([
        row(32, f"{PY} -m pipelines.cli.main bench chaos --faults processor=1"),
        row(33, "pytest tests/unit/test_processor_core.py -k run"),
        row(34, "vim pipelines/processor/worker.py"),
    ]) is None


def test_a_fault_heals_when_every_partition_flows_and_is_fresh_when_each_has_drained() -> None:
    at = 100.0
    back = {0: (101.0, 101.5), 3: (102.0, 102.1)}
    assert flowing_since(back, at) and fresh_since(back, at)
    # One partition has shown nothing committed after the fault: neither.
    assert not flowing_since({**back, 5: (99.0, 99.2)}, at)
    assert not fresh_since({**back, 5: (99.0, 99.2)}, at)
    # One shows a change committed after it, 6 s late: flowing, still draining its backlog.
    draining = {**back, 5: (104.0, 110.0)}
    assert flowing_since(draining, at) and not fresh_since(draining, at)
    assert fresh_since(draining, at, fresh_s=6.0)
    assert not flowing_since({}, at) and not fresh_since({}, at)
