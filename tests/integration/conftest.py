"""Fixtures on the real local stack: it is used when running, started (and stopped) when not."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from confluent_kafka import Consumer, Message, TopicPartition

from pipelines import stack
from pipelines.deploy import deploy_pipeline
from pipelines.kafka import clients, groups
from pipelines.kafka.reading import read_topic
from pipelines.kafka.topics import cdc_topic
from pipelines.processor.config import ProcessorConfig, RunStats
from pipelines.processor.runner import run_processor
from pipelines.serve.app import create_app
from pipelines.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def running_stack(settings: Settings) -> Iterator[Settings]:
    """The stack of these settings, healthy; stopped afterwards only if this fixture started it."""
    already = all(s.healthy for s in stack.status(settings))
    if not already:
        stack.up(settings)
    # The tests run processors of their own: one left by `make demo` (itself, or Dagster's
    # stream run) would share their consumer group and transactional id.
    for app in ("dagster", "processor"):
        stack.stop_app(settings, app)
    yield settings
    if not already:
        stack.down(settings)


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    return groups.end_offsets(settings, topic)


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="session")
def pipeline(running_stack: Settings) -> Settings:
    """Schema, data, schemas, topics and the connector deployed; the initial snapshot captured."""
    settings = running_stack
    deploy_pipeline(settings, events=1)
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        row = conn.execute("SELECT count(*) FROM ticketing.seat_inventory").fetchone()
    rows = row[0] if row else 0
    topic = cdc_topic(settings, "seat_inventory")
    wait_for(lambda: sum(end_offsets(settings, topic).values()) >= rows, timeout=300,
             what=f"the snapshot of {rows} seat_inventory rows in {topic}")
    return settings


class ProcessorThread:
    """The processor in a thread of the test process, stopped cleanly at the end."""

    def __init__(self, settings: Settings, config: ProcessorConfig | None = None) -> None:
        self.config = config
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.stats: RunStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(settings,), daemon=True)

    def _run(self, settings: Settings) -> None:
        try:
            self.stats = run_processor(settings, should_stop=self.stop.is_set, config=self.config,
                                       on_ready=self.ready.set)
        except BaseException as e:  # surfaced by the test through .error
            self.error = e

    def __enter__(self) -> ProcessorThread:
        """Start, and wait until the state is rebuilt and the partitions are assigned."""
        self.thread.start()
        wait_for(lambda: self.ready.is_set() or self.error is not None, timeout=180,
                 what="the processor to be ready")
        assert self.error is None, f"processor failed to start: {self.error!r}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


@pytest.fixture(scope="module")
def processor(pipeline: Settings) -> Iterator[ProcessorThread]:
    # Catch up on the snapshot first, so tests time only their own changes.
    run_processor(pipeline, should_stop=lambda: False, until_end=True)
    with ProcessorThread(pipeline) as running:
        yield running
    assert running.error is None, f"processor failed: {running.error!r}"


def records_since(settings: Settings, topic: str, start: dict[int, int]) -> list[Message]:
    """Every committed record of topic from the given offsets (0 where none) to its end now."""
    records: list[Message] = []
    read_topic(settings, topic, records.append, purpose="test", start=start)
    return records


def tail_consumer(settings: Settings, topic: str) -> Consumer:
    """A read_committed consumer positioned at the current end of every partition of topic."""
    consumer = clients.consumer(settings, group_id=f"seatflow-test-{uuid.uuid4()}", **{
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    consumer.assign([TopicPartition(topic, p, off) for p, off in end_offsets(settings, topic).items()])
    return consumer


@pytest.fixture(scope="module")
def serve_url(pipeline: Settings, processor: ProcessorThread) -> Iterator[str]:
    """The serve app in this process on a free port, ready (the topics read to their end)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(pipeline), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=180, what="serve to read the availability topics")
    yield url
    server.should_exit = True
    thread.join(15)
