"""supervise_worker with real child processes (a stand-in worker; no Kafka)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psutil
import pytest

from pipelines.processor import supervise
from pipelines.settings import Settings

pytestmark = pytest.mark.unit


def _wait_for(what: str, check, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _supervise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, standbys: int,  # type: ignore[no-untyped-def]
               env: dict[str, str] | None = None):
    monkeypatch.setattr(supervise, "WORKER_MODULE", "tests.unit.fake_worker")
    monkeypatch.setattr(supervise, "STANDBY_AFTER_S", 0.2)
    log = tmp_path / "starts"
    stop = threading.Event()
    said: list[str] = []
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervise.supervise_worker(
        Settings(), [], should_stop=stop.is_set, say=said.append, standbys=standbys,
        env={"FAKE_WORKER_LOG": str(log), **(env or {})})))
    thread.start()
    return log, stop, said, result, thread


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_the_standby_takes_over_when_the_worker_crashes_and_a_new_standby_follows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, stop, said, result, thread = _supervise(tmp_path, monkeypatch, standbys=1)
    _wait_for("no standby took over", lambda: any(x.endswith(" go") for x in _lines(log)))
    lines = _lines(log)
    # (Interpreters start in no set order under load: the lines' order is not the starts'.)
    first = next(x.split()[0] for x in lines if x.endswith(" active"))
    spare = next(x.split()[0] for x in lines if x.endswith(" standby"))
    assert first != spare and [x for x in lines if x.endswith(" go")] == [f"{spare} go"]
    # ... and a fresh standby stands by for the one that took over.
    _wait_for("no new standby",
              lambda: sum(x.endswith(" standby") for x in _lines(log)) >= 2)
    children = {int(x.split()[0]) for x in _lines(log)[1:]}
    stop.set()
    thread.join(40)
    assert result == [0]
    assert len(said) == 1 and "exited with 1" in said[0] and "standby takes over in 0.0 s" in said[0]
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in children), "a worker outlived its stopped parent"


def test_without_a_standby_a_crashed_worker_is_started_again_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stand-in crashes once a standby has started: pretend one did, the parent starts none.
    log, stop, said, result, thread = _supervise(tmp_path, monkeypatch, standbys=0)
    started = time.monotonic()
    _wait_for("the first worker did not start", lambda: len(_lines(log)) >= 1)
    with log.open("a") as out:
        out.write("0 standby\n")
    _wait_for("the crashed worker was not started again",
              lambda: len([x for x in _lines(log) if x.endswith(" active")]) >= 2)
    restarted_after = time.monotonic() - started
    stop.set()
    thread.join(40)
    assert result == [0]
    assert len(said) == 1 and "exited with 1" in said[0] and "starting it again in 0.0 s" in said[0]
    assert restarted_after < 10  # two Python start-ups, no waiting in between


def test_with_two_standbys_a_crash_right_after_a_take_over_finds_the_older_one_warm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker crashes once both standbys run; the first to take over crashes at once.
    log, stop, said, result, thread = _supervise(
        tmp_path, monkeypatch, standbys=2,
        env={"FAKE_WORKER_STANDBYS": "2", "FAKE_FIRST_TAKER_CRASHES": "1"})
    _wait_for("no second take-over", lambda: sum(x.endswith(" go") for x in _lines(log)) >= 2)
    lines = _lines(log)
    standbys = [x.split()[0] for x in lines if x.endswith(" standby")]
    takers = [x.split()[0] for x in lines if x.endswith(" go")]
    # Both take-overs by the two standbys that were there before the first crash: no cold
    # start, and not the standby started after the first take-over.
    assert sorted(takers) == sorted(standbys[:2]) and len(set(takers)) == 2, lines
    assert not any(x.endswith(" active") for x in lines[1:]), lines
    stop.set()
    thread.join(40)
    assert result == [0]
    assert [x for x in said if "exited with 1" in x and "standby takes over in 0.0 s" in x] == said
    assert len(said) == 2


def test_a_worker_whose_supervising_parent_is_gone_stops() -> None:
    from pipelines.processor.worker import watch_parent

    stop = threading.Event()
    # A parent pid that is not ours any more (as after a reparenting to init).
    thread = threading.Thread(target=watch_parent, args=(-1, stop), kwargs={"every_s": 0.05})
    thread.start()
    assert stop.wait(5), "the worker did not stop"
    thread.join(5)
    # With its parent alive it runs on.
    alive = threading.Event()
    watcher = threading.Thread(target=watch_parent, args=(os.getppid(), alive),
                               kwargs={"every_s": 0.05}, daemon=True)
    watcher.start()
    assert not alive.wait(0.5)
    alive.set()
