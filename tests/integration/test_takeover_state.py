"""A take-over reads the published state whole, past a dead owner's open transaction."""

from __future__ import annotations

import contextlib
import time
import uuid

import pytest
from confluent_kafka import KafkaException, TopicPartition

from pipelines.avro import registry_client
from pipelines.kafka import clients
from pipelines.kafka.groups import end_offsets
from pipelines.kafka.reading import next_records, topic_reader
from pipelines.kafka.topics import SEAT_AVAILABILITY
from pipelines.processor.published import PublishedState
from pipelines.processor.runner import run_processor
from pipelines.settings import Settings

pytestmark = pytest.mark.integration


def test_a_take_over_reads_what_was_committed_after_a_dead_owners_open_transaction(
        pipeline: Settings) -> None:
    # An owner killed inside a transaction holds the partition's last stable offset back until
    # the coordinator aborts it; an owner in between commits after it. A take-over that read
    # only to the last stable offset would miss the records of the owner in between (their
    # seats then missed the counts: test_scaleout, ninth session).
    settings = pipeline
    run_processor(settings, should_stop=lambda: False, until_end=True)
    ends = end_offsets(settings, SEAT_AVAILABILITY)
    partition = max(ends, key=lambda p: ends[p])
    assert ends[partition] > 0, "nothing published to read back"
    # A record of the partition to write again (its last offsets are transaction markers).
    reader = topic_reader(settings, "rebuild")
    reader.assign([TopicPartition(SEAT_AVAILABILITY, partition, max(0, ends[partition] - 100))])
    record = None
    deadline = time.monotonic() + 60
    while record is None and time.monotonic() < deadline:
        record = next((m for m in next_records(reader, 100, 1.0) if m.error() is None), None)
    reader.close()
    assert record is not None, "no record of the partition could be read"

    # The dead owner: a transaction left open, as by a SIGKILL.
    zombie = clients.producer(settings, **{"transactional.id": f"test-zombie-{uuid.uuid4()}",
                                           "transaction.timeout.ms": 5000})
    zombie.init_transactions(30)
    zombie.begin_transaction()
    zombie.produce(SEAT_AVAILABILITY, record.value(), record.key(), partition,
                   headers=record.headers())
    zombie.flush(10)
    # The owner in between: commits the same seat's record after it.
    interim = clients.producer(settings, **{"transactional.id": f"test-interim-{uuid.uuid4()}"})
    interim.init_transactions(30)
    interim.begin_transaction()
    offsets: list[int] = []
    interim.produce(SEAT_AVAILABILITY, record.value(), record.key(), partition,
                    headers=record.headers(), on_delivery=lambda _e, m: offsets.append(m.offset()))
    interim.commit_transaction(30)
    assert offsets, "the interim owner's record was not delivered"

    state = PublishedState(settings, SEAT_AVAILABILITY, registry_client(settings),
                           partitions=[partition])
    try:
        started = time.monotonic()
        state.catch_up([partition])
        waited = time.monotonic() - started
        position = state.consumer.position([TopicPartition(SEAT_AVAILABILITY, partition)])[0]
    finally:
        state.close()
        with contextlib.suppress(KafkaException):  # aborted by the coordinator already
            zombie.abort_transaction(10)
    assert position.offset > offsets[0], (
        f"read to {position.offset}, not past the interim owner's record at {offsets[0]}")
    # It waited for the coordinator to abort the dead owner's transaction (5 s timeout).
    assert waited >= 4, waited
