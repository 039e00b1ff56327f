"""supervise_worker with real child processes (a stand-in worker; no Kafka)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipelines.processor import supervise
from pipelines.settings import Settings

pytestmark = pytest.mark.unit


def test_a_crashed_worker_is_started_again_at_once_and_stopped_on_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "WORKER_MODULE", "tests.unit.fake_worker")
    log = tmp_path / "starts"
    stop = threading.Event()
    said: list[str] = []
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervise.supervise_worker(
        Settings(), [], should_stop=stop.is_set, say=said.append,
        env={"FAKE_WORKER_LOG": str(log)})))
    started = time.monotonic()
    thread.start()
    while not (log.exists() and len(log.read_text().split()) >= 2):
        assert time.monotonic() - started < 20, "the crashed worker was not started again"
        time.sleep(0.05)
    restarted_after = time.monotonic() - started
    stop.set()
    thread.join(40)
    assert result == [0]
    assert len(said) == 1 and "exited with 1" in said[0] and "again in 0.0 s" in said[0]
    assert restarted_after < 10  # two Python start-ups, no waiting in between
