"""The processor's batch engine (pure): decoded changes in, records out, one batch at a time.

No Kafka, no registry, no clock: the shell (runner.py) polls, decodes, opens the transaction,
hands each record to the engine with a `send` function for what it publishes, and commits or
aborts. The engine keeps the availability, the reference data and the changes that wait for
their references; it knows how to undo a batch that was not committed.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from pipelines.partitioning import event_partition
from pipelines.processor.aggregate import Availability, SectionKey
from pipelines.processor.core import Anomaly, SeatChange
from pipelines.processor.records import (
    Coordinates,
    anomaly_value,
    dead_letter_value,
    deleted_header,
)
from pipelines.processor.reference import Reference
from pipelines.processor.step import (
    Applied,
    Duplicate,
    Unresolved,
    apply_change,
    apply_truncate,
    undo,
)

__all__ = [
    "Batch",
    "BatchEngine",
    "BatchStats",
    "Decoded",
    "Encoders",
    "Message",
    "OutputTopics",
    "ReferenceChange",
    "Send",
    "Truncate",
    "Undecodable",
]

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
# Produce one record: (topic, value, key, headers, partition). A tombstone's value is None; a
# partition of None is the producer's choice.
Send = Callable[[str, bytes | None, bytes | None, Headers | None, int | None], None]


class Message(Protocol):
    """What the engine reads of a consumed record (confluent_kafka.Message has it)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...
    def timestamp(self) -> tuple[int, int]: ...


class Encoder(Protocol):
    def encode(self, record: Any) -> bytes: ...


@dataclass(frozen=True)
class Encoders:
    seat_key: Encoder
    seat_value: Encoder
    section_key: Encoder
    section_value: Encoder
    event_key: Encoder
    event_value: Encoder
    dead_letter: Encoder
    anomaly_key: Encoder
    anomaly_value: Encoder


@dataclass(frozen=True)
class OutputTopics:
    seat: str
    section: str
    event: str
    dead_letter: str
    anomaly: str
    # Partitions of the seat, section, event and anomaly topics: an event's records go to the
    # partition its CDC changes are in (event_partition), so one event is one partition of
    # each. None: the producer's partitioner (dead letters always).
    partitions: int | None = None


@dataclass
class BatchStats:
    records_in: int = 0
    records_out: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    anomalies: int = 0
    pending: int = 0
    lag: int = 0
    latency_p50_ms: float = 0.0
    latency_max_ms: float = 0.0
    # Sending the offsets and committing: round trips to the transaction coordinator.
    commit_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ReferenceChange:
    """A change of a reference table, its Debezium envelope decoded whole."""

    table: str
    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Truncate:
    """A truncate of seat_inventory."""

    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Bytes that cannot be read as a change at all: dead-lettered, with the reason."""

    reason: str
    error: BaseException


# A consumed record as the engine takes it (codec.RecordDecoder makes it). None: Debezium's
# tombstone after a delete (the delete itself carries the change).
Decoded: TypeAlias = SeatChange | ReferenceChange | Truncate | Undecodable | None


@dataclass
class _Pending:
    msg: Message
    change: SeatChange
    first_seen_ms: int


@dataclass(slots=True)
class Batch:
    """One batch in the making: its figures, what undoes it, and the aggregates it moved."""

    now: int
    stats: BatchStats
    send: Send
    undo: list[Applied] = field(default_factory=list)
    sections: dict[SectionKey, int] = field(default_factory=dict)  # -> newest commit time
    events: dict[int, int] = field(default_factory=dict)  # -> newest commit time
    committed: list[int] = field(default_factory=list)  # commit times of the published changes
    waiting: set[tuple[int, int]] = field(default_factory=set)  # seats with a pending change


def where(msg: Message) -> Coordinates:
    return (str(msg.topic()), msg.partition() or 0, msg.offset() or 0)


class BatchEngine:
    """Applies changes to the availability and says what to publish, batch by batch."""

    def __init__(self, availability: Availability, reference: Reference, encoders: Encoders,
                 topics: OutputTopics, *, reference_wait_ms: int) -> None:
        self.availability = availability
        self.reference = reference
        self.encoders = encoders
        self.topics = topics
        self.reference_wait_ms = reference_wait_ms
        self.pending: list[_Pending] = []
        self.seat_keys: dict[tuple[int, int], bytes] = {}
        self._partitions: dict[int, int | None] = {}  # event_id -> its partition

    def in_partitions(self, partitions: Collection[int]) -> Callable[[int], bool]:
        """Whether an event's records are in one of these partitions (all of them, when the
        topics are not co-partitioned)."""
        if self.topics.partitions is None:
            return lambda _event_id: True
        return lambda event_id: self.partition(event_id) in partitions

    def take_over(self, partitions: Collection[int], published: Availability) -> Availability:
        """Newly assigned partitions: their events become what `published` (the state read back
        from the seat topic) holds of them, replacing what this engine held of them from an
        earlier assignment; the rest of `published` is not this processor's. The events taken."""
        mine = self.in_partitions(partitions)
        self.availability.drop_events(lambda event_id: not mine(event_id))
        taken = published.split(mine)
        self.availability.absorb(taken)
        return taken

    def revoke(self, topic: str, partitions: Collection[int]) -> None:
        """These partitions of the input went to another processor: forget their events, and
        their changes that wait (the new owner reads them again: the committed offsets do not
        pass them)."""
        self.pending = [p for p in self.pending
                        if not (p.msg.topic() == topic and p.msg.partition() in partitions)]
        gone = self.in_partitions(partitions)
        self.availability.drop_events(lambda event_id: not gone(event_id))

    def partition(self, event_id: int) -> int | None:
        """The output partition of an event's records (the same in every co-partitioned topic)."""
        found = self._partitions.get(event_id, -1)
        if found == -1:
            n = self.topics.partitions
            found = self._partitions[event_id] = None if n is None else event_partition(event_id, n)
        return found

    # --- a batch ---------------------------------------------------------------------------

    def begin(self, now_ms: int, records_in: int, send: Send) -> Batch:
        """A new batch; the changes still waiting for their references are tried first."""
        b = Batch(now_ms, BatchStats(records_in=records_in), send)
        retry, self.pending = self.pending, []
        for item in retry:
            self.seat_change(b, item.msg, item.change, item.first_seen_ms)
        return b

    def apply(self, b: Batch, records: Sequence[Message], decoded: Sequence[Decoded]) -> None:
        """The batch's records, in order, each as decoded."""
        for msg, item in zip(records, decoded, strict=True):
            if isinstance(item, SeatChange):
                self.seat_change(b, msg, item, b.now)
            elif item is None:
                continue
            elif isinstance(item, ReferenceChange):
                self.reference_change(b, msg, item.table, item.envelope)
            elif isinstance(item, Truncate):
                self.truncate(b, msg, item.envelope)
            else:
                self.dead_letter(b, msg, item.reason, item.error)

    def finish(self, b: Batch) -> None:
        """Publish the section and event counts the batch moved (once each)."""
        e, t, a = self.encoders, self.topics, self.availability
        for key, committed in b.sections.items():
            b.send(t.section, e.section_value.encode(a.section_value(
                key, as_of_ms=b.now, committed_at_ms=committed)), e.section_key.encode(
                {"event_id": key[0], "section_code": key[1], "price_level_id": key[2]}), None,
                self.partition(key[0]))
        for event_id, committed in b.events.items():
            b.send(t.event, e.event_value.encode(a.event_value(
                event_id, as_of_ms=b.now, committed_at_ms=committed)),
                e.event_key.encode({"event_id": event_id}), None, self.partition(event_id))
        b.stats.pending = len(self.pending)

    def done(self, b: Batch, now_ms: int) -> BatchStats:
        """The batch was committed at now_ms: its figures, with how long its changes took from
        their commit in the database."""
        stats = b.stats
        if b.committed:
            latencies = [now_ms - committed for committed in b.committed]
            stats.latency_p50_ms = statistics.median(latencies)
            stats.latency_max_ms = max(latencies)
        return stats

    def abort(self, b: Batch) -> None:
        """The batch was not committed: undo it. Pending records sit at or after the committed
        offsets, so the shell's rewind reads them again."""
        for applied in reversed(b.undo):
            undo(self.availability, applied)
        self.pending = []

    def commit_floors(self) -> dict[tuple[str, int], int]:
        """Per partition, the oldest offset still pending: commit no further than that."""
        oldest: dict[tuple[str, int], int] = {}
        for item in self.pending:
            topic, partition, offset = where(item.msg)
            key = (topic, partition)
            oldest[key] = min(oldest.get(key, offset), offset)
        return oldest

    # --- records ---------------------------------------------------------------------------

    def seat_change(self, b: Batch, msg: Message, change: SeatChange, first_seen: int) -> None:
        key = change.key
        if b.waiting and key in b.waiting:  # an older change of the seat waits: keep the order
            self.pending.append(_Pending(msg, change, first_seen))
            return
        verdict = apply_change(change, self.availability, self.reference, published_at_ms=b.now,
                               give_up_waiting=b.now - first_seen >= self.reference_wait_ms)
        if isinstance(verdict, Applied):
            if self._publish_seat(b, verdict, change.committed_at_ms, msg):
                for anomaly in verdict.anomalies:
                    self._anomaly(b, msg, change, verdict, anomaly)
        elif isinstance(verdict, Duplicate):
            b.stats.duplicates += 1
        elif isinstance(verdict, Unresolved):
            b.waiting.add(key)
            self.pending.append(_Pending(msg, change, first_seen))

    def reference_change(self, b: Batch, msg: Message, table: str,
                         envelope: dict[str, Any]) -> None:
        try:
            self.reference.apply(table, envelope.get("op", ""), envelope.get("before"),
                                 envelope.get("after"))
        except (KeyError, TypeError, ValueError) as e:
            self.dead_letter(b, msg, "missing_field", e)

    def truncate(self, b: Batch, msg: Message, envelope: dict[str, Any]) -> None:
        """A truncate of seat_inventory: every seat gone (a tombstone each), counts to zero.

        Changes still waiting for their references were committed before the truncate: it
        supersedes them."""
        self.pending = [p for p in self.pending if p.msg.topic() != msg.topic()]
        b.waiting.clear()
        source = envelope.get("source") or {}
        lsn, ts_ms = source.get("lsn"), source.get("ts_ms")
        lsn = lsn if isinstance(lsn, int) else None
        committed = ts_ms if isinstance(ts_ms, int) else b.now
        applied = apply_truncate(self.availability, version=0, lsn=lsn)
        log.warning("truncate of %s at LSN %s: %d seats deleted", msg.topic(), lsn, len(applied))
        for verdict in applied:
            self._publish_seat(b, verdict, committed, msg)

    def dead_letter(self, b: Batch, msg: Message, reason: str, error: BaseException) -> None:
        _, ts = msg.timestamp()
        headers = msg.headers() or []
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
        self.send_dead_letter(b.send, dict(
            key=msg.key(), value=msg.value(), headers=pairs, where=where(msg), timestamp_ms=ts,
            reason=reason, error=error, failed_at_ms=b.now))
        b.stats.dead_lettered += 1

    def send_dead_letter(self, send: Send, fields: dict[str, Any]) -> None:
        """Never fails the run: a dead letter that cannot be encoded as it is goes without the
        original bytes (its coordinates, length and hash still name them)."""
        try:
            encoded = self.encoders.dead_letter.encode(dead_letter_value(**fields))
        except (ValueError, TypeError, OverflowError) as e:
            log.error("dead letter of %s not encodable with its bytes: %s", fields["where"], e)
            encoded = self.encoders.dead_letter.encode(dead_letter_value(**{
                **fields, "headers": [], "limit": -1}))
        send(self.topics.dead_letter, encoded, None, None, None)

    # --- what a change publishes -----------------------------------------------------------

    def _publish_seat(self, b: Batch, verdict: Applied, committed: int, msg: Message) -> bool:
        """Send a seat's record (a tombstone for a delete) and count what it moved; a record
        that cannot be encoded is undone and dead-lettered. Whether it was published."""
        key, _, new, value = verdict[:4]
        e = self.encoders
        seat_key = self.seat_keys.get(key)
        try:
            if seat_key is None:  # a seat's key bytes never change: encode them once
                seat_key = self.seat_keys[key] = e.seat_key.encode(verdict.record_key)
            encoded = None if value is None else e.seat_value.encode(value)
        except (ValueError, TypeError, OverflowError) as error:
            undo(self.availability, verdict)
            self.dead_letter(b, msg, "unencodable", error)
            return False
        headers = None
        if new is None:  # a delete: the tombstone says which version went, for later starts
            gone = self.availability.deleted.get(key)
            headers = deleted_header(gone) if gone is not None else None
        b.send(self.topics.seat, encoded, seat_key, headers, self.partition(key[0]))
        b.undo.append(verdict)
        sections = b.sections
        for section in verdict.sections:
            if sections.get(section, -1) < committed:
                sections[section] = committed
        if b.events.get(key[0], -1) < committed:
            b.events[key[0]] = committed
        b.committed.append(committed)
        b.stats.records_out += 1
        return True

    def _anomaly(self, b: Batch, msg: Message, change: SeatChange, verdict: Applied,
                 anomaly: Anomaly) -> None:
        e = self.encoders
        record = anomaly_value(anomaly, change, verdict.previous, where=where(msg),
                               detected_at_ms=b.now)
        b.send(self.topics.anomaly, e.anomaly_value.encode(record),
               e.anomaly_key.encode(verdict.record_key), None, self.partition(verdict.key[0]))
        b.stats.anomalies += 1
