"""The availability as published, read back from the compacted seat topic.

A processor starts from it: every seat's newest record (read committed) is its state, and the
tombstones' `seatflow.deleted` headers are the deletes it remembers. A cold start reads the
whole topic; a warm standby (`worker --standby`) follows it all along, so that taking over
costs only the records published since its last poll.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from pipelines.avro import AvroDecoder, WireFormatError
from pipelines.kafka import clients
from pipelines.kafka.groups import committed_ends, end_offsets
from pipelines.kafka.reading import next_records, topic_reader
from pipelines.polling import PollTimeoutError, poll
from pipelines.processor.aggregate import Availability, Deleted, SeatKey
from pipelines.processor.config import TRANSACTION_TIMEOUT_S, ProcessorError
from pipelines.processor.core import SeatState, state_of_record
from pipelines.processor.records import Coordinates, parse_deleted_header
from pipelines.settings import Settings

__all__ = ["REBUILD_READER", "SEAT_STATE_FIELDS", "PublishedState", "Unreadable",
           "apply_newest"]

log = logging.getLogger(__name__)

# Its topic reader's purpose (the group names pipelines/kafka/acls.py grants the processor).
REBUILD_READER = "rebuild"

# What the state keeps of a seat-availability record (the rest is skipped, not decoded).
SEAT_STATE_FIELDS = dict.fromkeys(
    ["source_version", "status", "section_code", "price_level_id", "price", "source_lsn",
     "snapshot"])


# Records read per poll.
POLL_RECORDS = 10_000

# How long a take-over waits for the partitions it reads to have no open transaction: a dead
# owner's is aborted by the coordinator once it is older than the transaction timeout, found by
# a scan every transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s by default).
STABLE_WAIT_S = TRANSACTION_TIMEOUT_S + 10 + 15


@dataclass
class Unreadable:
    """A record of the seat topic that could not be read: dead-lettered, skipped."""

    key: bytes | None
    value: bytes | None
    where: Coordinates
    error: BaseException


def apply_newest(availability: Availability, seat: SeatKey,
                 newest: SeatState | Deleted | None) -> None:
    """Make a seat what its newest published record says (pure): a state, a remembered delete,
    or nothing (a tombstone without the header, or a record that could not be read). Applying
    a topic's records in order ends where applying only each seat's last one does."""
    if isinstance(newest, Deleted):
        availability.put(seat, None)
        availability.remember_delete(seat, newest)
    else:
        availability.remember_delete(seat, None)
        availability.put(seat, newest)


class PublishedState:
    """Follows the seat topic from its beginning into an Availability.

    Records are kept raw, the newest per key, and decoded only when applied: a start reads
    hundreds of thousands of records of which a fraction are the seats' last ones.
    """

    def __init__(self, settings: Settings, topic: str, registry: SchemaRegistryClient, *,
                 partitions: Iterable[int] | None = None) -> None:
        self.topic = topic
        self.availability = Availability()
        self.unreadable: list[Unreadable] = []
        self.records = 0
        self._keys = AvroDecoder(registry)
        self._values = AvroDecoder(registry, projection=SEAT_STATE_FIELDS)
        self._newest: dict[bytes | None, Message] = {}
        self._eof_at: dict[int, int] = {}  # partition -> the end offset last reported
        self._closed = False
        # At the end, a fetch waits at the broker at most fetch.wait.max.ms for new records: a
        # standby's last records come at most this late.
        self.consumer = topic_reader(settings, REBUILD_READER, **{
            "fetch.wait.max.ms": 100})
        self._admin = clients.admin(settings)
        self._settings = settings
        meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        present = set() if meta is None or meta.error is not None else set(meta.partitions)
        self.partitions: list[int] = sorted(
            present if partitions is None else present & set(partitions))
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                              for p in self.partitions])

    def poll(self, timeout: float, max_records: int = POLL_RECORDS) -> int:
        """Read what has arrived (waiting at most `timeout` for the first record); the count.
        Fewer than max_records: it has read all there was."""
        count = 0
        for msg in next_records(self.consumer, max_records, timeout=timeout):
            err = msg.error()
            if err is None:
                self._newest[msg.key()] = msg
                count += 1
            elif err.code() == KafkaError._PARTITION_EOF:
                self._eof_at[msg.partition() or 0] = msg.offset() or 0
            else:
                raise KafkaException(err)
        self.records += count
        return count

    def catch_up(self, partitions: Iterable[int] | None = None, *,
                 stable_wait_s: float = STABLE_WAIT_S) -> Availability:
        """Read to the end of the topic (or of those of its partitions) once no transaction is
        open on them, then apply."""
        wanted = self.partitions if partitions is None else sorted(
            set(partitions) & set(self.partitions))
        ends = self._stable_ends(wanted, stable_wait_s) if wanted else {}
        while any(self._eof_at.get(p, -1) < end for p, end in ends.items() if end > 0):
            self.poll(1.0)
        self.apply()
        return self.availability

    def _stable_ends(self, wanted: list[int], wait_s: float) -> dict[int, int]:
        """The partitions' ends once their last stable offset has reached their high
        watermark. A previous owner that died inside a transaction (another slot: its
        transactional id is not ours to fence) holds the last stable offset back until the
        coordinator aborts that transaction. An owner in between may have committed after it;
        reading only to the last stable offset would then miss those records, and the counts
        built from this state would miss their seats (seen in test_scaleout: a whole range of
        a section's open seats uncounted)."""
        def ends() -> tuple[dict[int, int], dict[int, int]]:
            high = end_offsets(self._settings, self.topic, admin=self._admin)
            return committed_ends(self._admin, self.topic, wanted), {p: high.get(p, 0)
                                                                    for p in wanted}

        try:
            stable, _ = poll(ends, until=lambda e: all(e[0][p] >= e[1][p] for p in wanted),
                             timeout_s=wait_s, every_s=0.5, on_wait=lambda e: log.info(
                                 "waiting for an open transaction on %s to end before reading "
                                 "its state: last stable %s, high watermark %s", self.topic,
                                 e[0], e[1]))
        except PollTimeoutError as e:
            raise ProcessorError(
                f"{self.topic} partitions {wanted} still have an open transaction after "
                f"{wait_s:g} s (last stable offsets, high watermarks: {e.last}): their state "
                "cannot be read whole") from e
        return stable

    def apply(self) -> None:
        """Decode the newest record of every key read since the last apply into the state."""
        for raw_key, msg in self._newest.items():
            self._apply_one(raw_key, msg)
        self._newest.clear()

    def _apply_one(self, raw_key: bytes | None, msg: Message) -> None:
        raw_value = msg.value()
        seat: SeatKey | None = None
        try:
            key = self._keys.decode(raw_key)
            seat = (key["event_id"], key["seat_id"])
            newest: SeatState | Deleted | None
            if raw_value is None:
                newest = parse_deleted_header(msg.headers())  # type: ignore[arg-type]
            else:
                newest = state_of_record(self._values.decode(raw_value))
        except (WireFormatError, KeyError, TypeError, ValueError) as e:
            where = (self.topic, msg.partition() or 0, msg.offset() or 0)
            log.error("skipping unreadable record %s[%d]@%d of the state: %s", *where, e)
            self.unreadable.append(Unreadable(raw_key, raw_value, where, e))
            newest = None
        if seat is not None:
            apply_newest(self.availability, seat, newest)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.consumer.close()
            self._newest.clear()
