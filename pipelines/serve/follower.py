"""The thread that reads the availability topics into a ServeState and wakes the streams.

It reads every partition of the three topics read_committed from the beginning (assigned, no
consumer group offsets: every `serve` instance holds all of it), and keeps following them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition

from pipelines.avro import AvroDecoder, WireFormatError, registry_client
from pipelines.kafka import clients
from pipelines.kafka.groups import committed_ends
from pipelines.kafka.reading import next_records, topic_reader
from pipelines.kafka.topics import EVENT_AVAILABILITY, SEAT_AVAILABILITY, SECTION_AVAILABILITY
from pipelines.processor.records import parse_deleted_header
from pipelines.serve.state import ServeState, epoch_ms
from pipelines.settings import Settings

__all__ = ["SERVE_READER", "TOPICS", "Follower", "FollowerStats", "apply_record", "quantile"]

log = logging.getLogger(__name__)

# Its topic reader's purpose (the group names pipelines/kafka/acls.py grants the reader).
SERVE_READER = "serve"

TOPICS = (SEAT_AVAILABILITY, SECTION_AVAILABILITY, EVENT_AVAILABILITY)
# Staleness samples kept for the quantiles /metrics shows: the last minute of an on-sale.
STALENESS_SAMPLES = 100_000
POLL_RECORDS = 5_000


def quantile(samples: Iterable[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of the samples; None when there are none."""
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def apply_record(state: ServeState, topic: str, key: dict[str, Any], value: dict[str, Any] | None,
                 headers: list[tuple[str, Any]] | None) -> Any:
    """One decoded record of an availability topic into the state (the caller holds its lock);
    the change it made, or None."""
    event_id = int(key["event_id"])
    if topic == SEAT_AVAILABILITY:
        gone = parse_deleted_header(headers) if value is None else None
        return state.apply_seat(event_id, int(key["seat_id"]), value,
                                deleted=None if gone is None else (gone.version, gone.lsn))
    if topic == SECTION_AVAILABILITY:
        return state.apply_section(event_id, str(key["section_code"]), int(key["price_level_id"]),
                                   value)
    return state.apply_event(event_id, value)


@dataclass
class FollowerStats:
    """What the follower has seen, for /healthz and /metrics (written by its thread only)."""

    records: int = 0
    unreadable: int = 0
    # Receive time minus source commit time (s) of each change read once caught up.
    staleness: deque[float] = field(default_factory=lambda: deque(maxlen=STALENESS_SAMPLES))
    # (topic, partition) -> committed records not yet read, from librdkafka's statistics.
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    error: str | None = None


class Follower:
    """Reads the availability topics into `state` in a thread of its own; `on_changes` gets the
    ids of the events that changed after each batch (from that thread)."""

    def __init__(self, settings: Settings, state: ServeState, *,
                 on_changes: Callable[[set[int]], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.state = state
        self.on_changes = on_changes
        self.clock = clock
        self.stats = FollowerStats()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serve-follower", daemon=True)
        # Where each partition ends now: the follower is ready once it has read that far.
        self._ends: dict[tuple[str, int], int] = {}
        self._positions: dict[tuple[str, int], int] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as e:  # /healthz says so; the supervisor restarts the process
            log.exception("the follower stopped")
            self.stats.error = f"{type(e).__name__}: {e}"
            raise

    def _follow(self) -> None:
        registry = registry_client(self.settings)
        keys, values = AvroDecoder(registry), AvroDecoder(registry)
        consumer = topic_reader(self.settings, SERVE_READER, **{
            # A live change waits at the broker at most this long: freshness, not throughput.
            "fetch.wait.max.ms": 50,
            "statistics.interval.ms": 1000,
            "stats_cb": self._on_statistics,
        })
        admin = clients.admin(self.settings, log_level=4)
        try:
            assignment = []
            for topic in TOPICS:
                meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
                if meta is None or meta.error is not None:
                    raise KafkaException(f"topic {topic} does not exist (seatflow deploy)")
                partitions = sorted(meta.partitions)
                for p, end in committed_ends(admin, topic, partitions).items():
                    self._ends[(topic, p)] = end
                assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
            consumer.assign(assignment)
            self._check_ready()
            while not self._stop.is_set():
                changed: set[int] = set()
                batch = next_records(consumer, POLL_RECORDS, timeout=0.5)
                received = self.clock()
                with self.state.lock:
                    for msg in batch:
                        self._handle(msg, keys, values, received, changed)
                if changed:
                    self.on_changes(changed)
                if not self.ready.is_set():
                    self._check_ready()
        finally:
            consumer.close()

    def _handle(self, msg: Message, keys: AvroDecoder, values: AvroDecoder, received: float,
                changed: set[int]) -> None:
        err = msg.error()
        where = (msg.topic() or "", msg.partition() or 0)
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self._positions[where] = max(self._positions.get(where, 0), msg.offset() or 0)
                return
            raise KafkaException(err)
        self._positions[where] = (msg.offset() or 0) + 1
        self.stats.records += 1
        try:
            key = keys.decode(msg.key())
            value = values.decode(msg.value())
            headers = msg.headers()  # a list of pairs when read (a dict only when produced)
            change = apply_record(self.state, where[0], key, value,
                                  headers if isinstance(headers, list) else None)
        except (WireFormatError, KeyError, TypeError, ValueError) as e:
            # The processor dead-letters what it cannot publish; a record here that cannot be
            # read is skipped and counted, never a reason to stop serving the rest.
            self.stats.unreadable += 1
            log.error("skipping unreadable record %s[%d]@%s: %s", *where, msg.offset(), e)
            return
        if change is None:
            return
        changed.add(change.event_id)
        committed = epoch_ms(value.get("source_committed_at")) if value else None
        # Seats only: section and event counts carry their newest seat's commit time again.
        if self.ready.is_set() and committed is not None and where[0] == SEAT_AVAILABILITY:
            self.stats.staleness.append(max(0.0, received - committed / 1000))

    def _check_ready(self) -> None:
        if all(self._positions.get(tp, 0) >= end for tp, end in self._ends.items() if end > 0):
            log.info("caught up: %d records read", self.stats.records)
            self.ready.set()

    def _on_statistics(self, text: str) -> None:
        """librdkafka's statistics (every second, from poll): each partition's lag, from the
        last stable offset (what read_committed can read) and the next offset to read."""
        try:
            stats = json.loads(text)
        except ValueError:
            return
        for topic, tstats in stats.get("topics", {}).items():
            for p, pstats in tstats.get("partitions", {}).items():
                if p == "-1" or not isinstance(pstats, dict):
                    continue
                end = pstats.get("ls_offset", -1)
                at = self._positions.get((topic, int(p)), 0)
                if end >= 0:
                    self.stats.lag[(topic, int(p))] = max(0, end - at)

    def lag(self) -> int:
        return sum(self.stats.lag.values())
