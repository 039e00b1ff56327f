"""The processor's configuration, its run figures and the errors that end a run."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import SeatflowError
from pipelines.kafka.topics import (
    ANOMALIES,
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    SECTION_AVAILABILITY,
    cdc_topic,
)
from pipelines.processor.engine import BatchStats, OutputTopics
from pipelines.processor.reference import REFERENCE_TABLES
from pipelines.settings import Settings

__all__ = [
    "GROUP_ID",
    "TRANSACTION_TIMEOUT_S",
    "OffsetsLostError",
    "ProcessorConfig",
    "ProcessorError",
    "RunStats",
]

GROUP_ID = "seatflow-availability"
# A transaction left open by a processor that died blocks read_committed readers of its
# partitions, and its offsets' next owner, until its successor fences it or this passes.
TRANSACTION_TIMEOUT_S = 15
# librdkafka doubles its wait between attempts to reach a broker up to 10 s by default: a
# standby that waited through a broker's restart noticed the broker back that much later, and
# took over that much later (Java's clients, Connect's among them, stop at 1 s).
_RECONNECT = {"reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 1000}


class ProcessorError(SeatflowError, RuntimeError):
    """The processor cannot go on (a fatal Kafka error, a missing schema)."""


class OffsetsLostError(ProcessorError):
    """The group's committed position in a CDC partition is older than the partition's log start:
    changes were trimmed (retention) before the processor read them. Never skipped silently:
    the affected events must be backfilled from the database."""

    def __init__(self, lost: list[tuple[str, int, int, int]]) -> None:
        self.lost = lost  # (topic, partition, committed offset, log start offset)
        where = ", ".join(f"{t}[{p}] committed {c} < log start {s}" for t, p, c, s in lost)
        super().__init__(f"changes were trimmed before they were processed: {where}; "
                         "backfill the events of these partitions (backfill_event job, or "
                         "`seatflow backfill`), then reset the group's offsets")


@dataclass(frozen=True)
class ProcessorConfig:
    """Topics and tuning of one processor; the defaults are the pipeline's own."""

    seat_inventory_topic: str
    reference_topics: dict[str, str]  # table -> CDC topic
    seat_topic: str = SEAT_AVAILABILITY
    section_topic: str = SECTION_AVAILABILITY
    event_topic: str = EVENT_AVAILABILITY
    dead_letter_topic: str = DEAD_LETTER
    anomaly_topic: str = ANOMALIES
    group_id: str = GROUP_ID
    transactional_id: str = f"{GROUP_ID}-0"
    batch_size: int = 5000
    batch_timeout_s: float = 0.05
    # Partitions of the co-partitioned output topics (None: the producer's partitioner, for
    # topics of tests that are not co-partitioned).
    partitions: int | None = None
    reference_wait_ms: int = 10_000
    load_reference_from_db: bool = True
    # Exit the process (EXIT_HUNG) when a transaction call blocks past its limit; for a worker
    # process that a supervisor restarts, never for a processor run inside another program.
    exit_when_hung: bool = False

    @classmethod
    def of(cls, settings: Settings, *, slot: int = 0, **overrides: Any) -> ProcessorConfig:
        """The pipeline's processor; `slot` numbers the instances of a scaled-out processor
        (each has its own transactional id and static group member id)."""
        overrides.setdefault("transactional_id", f"{GROUP_ID}-{slot}")
        return cls(
            seat_inventory_topic=cdc_topic(settings, "seat_inventory"),
            reference_topics={t: cdc_topic(settings, t) for t in REFERENCE_TABLES},
            **{"partitions": settings.partitions, **overrides},
        )

    @property
    def output_topics(self) -> OutputTopics:
        return OutputTopics(self.seat_topic, self.section_topic, self.event_topic,
                            self.dead_letter_topic, self.anomaly_topic, self.partitions)

    @property
    def input_topics(self) -> list[str]:
        """What the consumer group shares out: the changes, partitioned by event. (Every
        instance reads all of the small reference topics itself, outside the group.)"""
        return [self.seat_inventory_topic]

    def producer_settings(self) -> dict[str, Any]:
        """The transactional producer's settings, over the client base of pipelines.kafka.clients
        (the runner adds its error callback)."""
        return {
            "transactional.id": self.transactional_id,
            # Never create a topic by writing to it (librdkafka's producer default): a worker
            # left running against a fresh broker once made the output topics with 1 partition.
            "allow.auto.create.topics": False,
            "linger.ms": 5,
            "compression.type": "lz4",
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_S * 1000,
            # A transaction begun while the coordinator still writes the previous one's markers
            # is refused (CONCURRENT_TRANSACTIONS) and retried after this backoff: at the
            # default 100 ms, one commit in a few dozen waited out the backoff, many times a
            # commit's usual time (docs/performance.md).
            "retry.backoff.ms": 10,
            "retry.backoff.max.ms": 100,
            **_RECONNECT,
        }

    def consumer_settings(self) -> dict[str, Any]:
        """The group consumer's settings, over the client base of pipelines.kafka.clients (the
        runner adds its error callback)."""
        return {
            "group.id": self.group_id,
            # Static membership: a restarted processor takes its predecessor's partitions at
            # once (and fences it), instead of waiting out the dead member's session timeout.
            "group.instance.id": self.transactional_id,
            # Named in the group's description (`seatflow stack status`, the stream run's tags).
            "client.id": f"{self.transactional_id}@{socket.gethostname()}",
            "enable.auto.commit": False,
            # Never skip silently: a committed offset that retention trimmed away is an error
            # (OffsetsLostError); a partition the group never committed starts at its beginning
            # (intake.start_positions).
            "auto.offset.reset": "error",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.max.bytes": 52_428_800,
            # Partitions move one by one when instances come and go; the others keep flowing.
            "partition.assignment.strategy": "cooperative-sticky",
            # An instance that dies without a successor (its standby takes over at once under
            # the same member id) loses its partitions to the others after this.
            "session.timeout.ms": 6_000,
            "heartbeat.interval.ms": 1_000,
            **_RECONNECT,
        }


@dataclass
class RunStats:
    batches: int = 0
    records_in: int = 0
    records_out: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    anomalies: int = 0
    aborted: int = 0
    last_batch: BatchStats = field(default_factory=BatchStats)
    # Wall time from subscribing to the input to the last batch committed (start-up, the
    # state's rebuild included, excluded), and from the first record read to the same end.
    run_seconds: float = 0.0
    busy_seconds: float = 0.0
    # Which Avro codec decoded and encoded the records: native or python (pipelines.avro).
    codec: str = ""

    def add(self, batch: BatchStats) -> None:
        self.batches += 1
        self.records_in += batch.records_in
        self.records_out += batch.records_out
        self.duplicates += batch.duplicates
        self.dead_lettered += batch.dead_lettered
        self.anomalies += batch.anomalies
        self.last_batch = batch
