"""The input's side of the shell: sorting what a poll returned, knowing when every partition
is read to its end, and where newly assigned partitions start."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError

from pipelines.processor.intake import Intake, OffsetLost, is_fatal, start_positions

pytestmark = pytest.mark.unit

CDC = "cdc.ticketing.seat_inventory"


class Result:
    """A poll result, as the intake reads it (the shell gives it confluent_kafka's)."""

    def __init__(self, partition: int, offset: int, error: KafkaError | None = None) -> None:
        self._partition, self._offset, self._error = partition, offset, error

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return CDC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def end(partition: int) -> Result:
    return Result(partition, 0, KafkaError(KafkaError._PARTITION_EOF))


def test_records_pass_and_partitions_at_their_end_are_remembered_until_more_comes() -> None:
    intake = Intake()
    records = [Result(0, 5), Result(1, 7)]
    polled = intake.sort([records[0], end(0), records[1], end(1)])
    assert polled.records == records and polled.lost is None and polled.fatal is None
    assert intake.all_at_end(2) and not intake.all_at_end(3)
    intake.sort([Result(1, 8)])  # partition 1 is no longer at its end
    assert not intake.all_at_end(2) and intake.all_at_end(1)
    intake.sort([end(1)])
    assert intake.all_at_end(2)
    intake.rewound()  # an aborted batch: its partitions are read again
    assert not intake.all_at_end(1)


def test_a_lost_offset_ends_the_poll_there() -> None:
    for code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
        polled = Intake().sort([Result(0, 5), Result(2, 40, KafkaError(code)), Result(0, 6)])
        assert polled.lost == OffsetLost(CDC, 2, 40)
        assert [m.offset() for m in polled.records] == [5]  # what came after is not looked at


def test_a_fatal_error_ends_the_poll_and_other_errors_are_only_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    fenced = KafkaError(KafkaError._FATAL)  # its fatal() flag is not set
    assert is_fatal(fenced) and is_fatal(KafkaError(KafkaError._TRANSPORT, fatal=True))
    with caplog.at_level(logging.WARNING):
        polled = Intake().sort([
            Result(0, 0, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)),  # not even a warning
            Result(0, 0, KafkaError(KafkaError._TRANSPORT)),
            Result(0, 5), Result(0, 0, fenced), Result(0, 6)])
    assert polled.fatal is fenced and [m.offset() for m in polled.records] == [5]
    assert [r.getMessage() for r in caplog.records] == [
        f"consumer: {KafkaError(KafkaError._TRANSPORT)}"]


def test_assigned_partitions_start_at_the_committed_offset_or_the_beginning() -> None:
    committed = {(CDC, 0): 10, (CDC, 1): -1001, (CDC, 2): 3, (CDC, 3): 4}
    lows = {(CDC, 0): 10, (CDC, 1): 50, (CDC, 2): 4, (CDC, 3): 0}
    starts, lost = start_positions(committed, lows)
    assert starts == {(CDC, 0): 10, (CDC, 1): OFFSET_BEGINNING, (CDC, 2): 3, (CDC, 3): 4}
    assert lost == [(CDC, 2, 3, 4)]  # trimmed away before it was read: never skipped
