"""What a chaos run reads back: every seat-availability version published, as it arrives,
and the versions the ticketing host holds."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from array import array
from collections.abc import Mapping, Sequence

import psycopg
from confluent_kafka import KafkaError, Message, TopicPartition
from tenacity import retry, stop_after_delay, wait_fixed

from pipelines.avro import AvroDecoder, registry_client
from pipelines.chaos.report import VersionLedger, flowing_since, fresh_since, staleness_s
from pipelines.kafka import clients
from pipelines.kafka.reading import read_topic
from pipelines.kafka.topics import SEAT_AVAILABILITY
from pipelines.settings import Settings

log = logging.getLogger(__name__)


class VersionTail(threading.Thread):
    """A read_committed reader of seat-availability from given offsets: which versions it saw,
    and for each first record its commit time and when it arrived."""

    def __init__(self, settings: Settings, start: Mapping[int, int]) -> None:
        super().__init__(daemon=True, name="chaos-tail")
        self.ledger = VersionLedger()
        self.commits = array("d")
        self.receipts = array("d")
        # Seconds: per partition, (commit, receipt) of its latest change received so far. The
        # topic is partitioned by event, and after a fault the partitions catch up each at its
        # own pace.
        self.latest_by_partition: dict[int, tuple[float, float]] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.position: dict[int, int] = dict(start)
        self._lock = threading.Lock()
        self.decoder = AvroDecoder(registry_client(settings))
        self.consumer = clients.consumer(settings, group_id=f"seatflow-chaos-{uuid.uuid4()}", **{
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            # Its end: a partition's last offset is often a transaction marker, which no record
            # reaches; the end-of-partition event gives the offset past it.
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
            # The broker is one of the things killed: keep trying, never give up on it, and
            # keep librdkafka's line per refused connection out of the report.
            "reconnect.backoff.max.ms": 1000,
            "log_level": 0,
        })
        self.consumer.assign([TopicPartition(SEAT_AVAILABILITY, p, o) for p, o in start.items()])

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self.consumer.consume(2000, timeout=0.1)
                received = time.time()
                for msg in batch:
                    self._take(msg, received)
        except BaseException as e:  # reported by the caller, not lost in a thread
            self.error = e
        finally:
            self.consumer.close()

    def _take(self, msg: Message, received: float) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                with self._lock:
                    partition = msg.partition() or 0
                    self.position[partition] = max(self.position.get(partition, 0),
                                                   msg.offset() or 0)
            else:
                log.debug("tail: %s", err)
            return
        with self._lock:
            self.position[msg.partition() or 0] = (msg.offset() or 0) + 1
        raw = msg.value()
        if raw is None:
            return  # a tombstone: a deleted seat has no version to check
        value = self.decoder.decode(raw)
        snapshot = bool(value["snapshot"])
        first = self.ledger.add(value["event_id"], value["seat_id"], value["source_version"],
                                snapshot=snapshot)
        if first and not snapshot:
            committed = value["source_committed_at"].timestamp()
            self.commits.append(committed)
            self.receipts.append(received)
            partition = msg.partition() or 0
            if committed > self.latest_by_partition.get(partition, (0.0, 0.0))[0]:
                self.latest_by_partition[partition] = (committed, received)

    def flowing_since(self, at: float) -> bool:
        return flowing_since(dict(self.latest_by_partition), at)

    def fresh_since(self, at: float) -> bool:
        return fresh_since(dict(self.latest_by_partition), at)

    def staleness(self, windows: Sequence[tuple[float, float]]) -> list[float]:
        """staleness_s of each (start, end) window, over every change this reader received;
        rounded to the millisecond. For after the reading stopped."""
        order = sorted(range(len(self.commits)), key=self.commits.__getitem__)
        commits = [self.commits[i] for i in order]
        receipts = [self.receipts[i] for i in order]
        longest = max((r - c for c, r in zip(commits, receipts, strict=True)), default=0.0)
        return [round(staleness_s(commits, receipts, start, end, max_latency_s=longest), 3)
                for start, end in windows]

    def reached(self, ends: Mapping[int, int]) -> bool:
        with self._lock:
            return all(self.position.get(p, 0) >= end for p, end in ends.items())


def seat_versions(settings: Settings) -> dict[tuple[int, int], int]:
    """Every seat's version in the database now (waiting out a restart)."""
    @retry(stop=stop_after_delay(120), wait=wait_fixed(1), reraise=True)
    def read() -> dict[tuple[int, int], int]:
        with psycopg.connect(settings.pg_dsn(), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT event_id, seat_id, version FROM ticketing.seat_inventory").fetchall()
        return {(e, s): v for e, s, v in rows}

    return read()


def version_sum(settings: Settings) -> int | None:
    try:
        with psycopg.connect(settings.pg_dsn(), connect_timeout=3) as conn:
            row = conn.execute("SELECT coalesce(sum(version), 0)::bigint"
                               " FROM ticketing.seat_inventory").fetchone()
    except psycopg.Error:
        return None  # PostgreSQL is down (a fault): ask again later
    return int(row[0]) if row else 0


def records_since(settings: Settings, topic: str, start: Mapping[int, int], since_ms: int) -> int:
    """Committed records of topic written since since_ms, from `start` (0 if it is missing)."""
    count = 0

    def handle(msg: Message) -> None:
        nonlocal count
        if msg.timestamp()[1] >= since_ms:
            count += 1

    read_topic(settings, topic, handle, purpose="chaos", start=start)
    return count
