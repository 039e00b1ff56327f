"""The reference data of one processor: loaded from the ticketing host, then kept current from
the reference tables' CDC topics, which every instance reads whole with a consumer of its own,
outside the consumer group (like a global table: they are small, and every event needs them)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from pipelines.kafka.groups import committed_ends
from pipelines.kafka.reading import next_records, topic_reader
from pipelines.processor.reference import EventRef, PriceLevelRef, Reference, SeatRef, SectionRef
from pipelines.settings import Settings

__all__ = ["REFERENCE_READER", "ReferenceFeed", "load_reference"]

log = logging.getLogger(__name__)

# Its topic reader's purpose (the group names pipelines/kafka/acls.py grants the processor).
REFERENCE_READER = "reference"


@retry(retry=retry_if_exception_type(psycopg.OperationalError),
       wait=wait_exponential(multiplier=0.5, max=5), stop=stop_after_delay(300),
       before_sleep=before_sleep_log(log, logging.WARNING), reraise=True)
def load_reference(settings: Settings) -> Reference:
    """Events, sections, seats and price levels from the ticketing host, for enrichment (the
    database restarting is waited for)."""
    ref = Reference()
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn, conn.cursor() as cur:
        # fetchall: iterating a cursor costs a call per row, and there is a row per seat.
        cur.execute("SELECT event_id, name, status FROM ticketing.events")
        ref.events = {i: EventRef(name, status) for i, name, status in cur.fetchall()}
        cur.execute("SELECT section_id, code FROM ticketing.sections")
        ref.sections = {i: SectionRef(code) for i, code in cur.fetchall()}
        cur.execute("SELECT seat_id, section_id, row_label, seat_number FROM ticketing.seats")
        ref.seats = {i: SeatRef(sec, row, num) for i, sec, row, num in cur.fetchall()}
        cur.execute("SELECT price_level_id, event_id, code, price FROM ticketing.price_levels")
        ref.price_levels = {i: PriceLevelRef(e, code, price)
                            for i, e, code, price in cur.fetchall()}
    return ref


class ReferenceFeed:
    """`reference` as loaded, and the changes of its topics since, batch by batch.

    The topics are followed from their current end *before* the database is read, so a change
    committed in between is read again, never missed (applying it twice does no harm). Without
    the database (`from_db=False`) they are read from their beginning."""

    def __init__(self, settings: Settings, topics: Mapping[str, str], admin: AdminClient, *,
                 from_db: bool) -> None:
        self.consumer = topic_reader(settings, REFERENCE_READER)
        meta = self.consumer.list_topics(timeout=10).topics
        starts = []
        for topic in topics.values():
            parts = sorted(meta[topic].partitions) if topic in meta else []
            ends = committed_ends(admin, topic, parts) if from_db and parts else {}
            starts += [TopicPartition(topic, p, ends.get(p, OFFSET_BEGINNING)) for p in parts]
        self.consumer.assign(starts)
        self.reference = load_reference(settings) if from_db else Reference()
        self._batch_starts: dict[tuple[str, int], int] = {}

    def records(self, max_records: int) -> list[Message]:
        """The changes that have arrived (without waiting), remembering where this batch's
        began (rewind)."""
        found = [m for m in next_records(self.consumer, max_records, 0) if m.error() is None]
        self._batch_starts = {}
        for m in found:
            self._batch_starts.setdefault((str(m.topic()), m.partition() or 0), m.offset() or 0)
        return found

    def rewind(self) -> None:
        """Read the last batch's changes again: its transaction was aborted."""
        for (topic, partition), offset in self._batch_starts.items():
            self.consumer.seek(TopicPartition(topic, partition, offset))

    def close(self) -> None:
        self.consumer.close()
