"""The processor's configuration: the topics of the pipeline, and the client settings that its
exactly-once publishing rests on."""

from __future__ import annotations

import pytest

from pipelines.kafka.topics import SEAT_AVAILABILITY, cdc_topic
from pipelines.processor.config import GROUP_ID, TRANSACTION_TIMEOUT_S, ProcessorConfig
from pipelines.settings import Settings

pytestmark = pytest.mark.unit


def test_each_slot_of_a_scaled_out_processor_has_its_own_ids_in_one_group() -> None:
    settings = Settings()
    one, two = ProcessorConfig.of(settings, slot=1), ProcessorConfig.of(settings, slot=2)
    assert one.input_topics == [cdc_topic(settings, "seat_inventory")]
    assert (one.group_id, two.group_id) == (GROUP_ID, GROUP_ID)
    assert one.transactional_id != two.transactional_id
    consumer = one.consumer_settings()
    assert consumer["group.instance.id"] == one.transactional_id  # fenced by its successor
    assert consumer["client.id"].startswith(f"{one.transactional_id}@")
    assert one.producer_settings()["transactional.id"] == one.transactional_id


def test_the_input_is_read_committed_and_its_offsets_commit_only_with_a_transaction() -> None:
    consumer = ProcessorConfig.of(Settings()).consumer_settings()
    assert (consumer["isolation.level"], consumer["enable.auto.commit"]) == (
        "read_committed", False)
    assert consumer["auto.offset.reset"] == "error"  # a trimmed offset is never skipped
    assert consumer["enable.partition.eof"] is True  # until_end needs to see the ends


def test_the_output_topics_are_the_configs_and_never_made_by_writing_to_them() -> None:
    config = ProcessorConfig.of(Settings(), partitions=6)
    topics = config.output_topics
    assert (topics.seat, topics.partitions) == (SEAT_AVAILABILITY, 6)
    producer = config.producer_settings()
    assert producer["allow.auto.create.topics"] is False
    assert producer["transaction.timeout.ms"] == TRANSACTION_TIMEOUT_S * 1000
