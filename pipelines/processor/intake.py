"""The input's side of the shell, pure: what a poll returned (records, ends of partitions,
errors), and where newly assigned partitions start."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from confluent_kafka import OFFSET_BEGINNING, KafkaError

__all__ = ["Intake", "OffsetLost", "Polled", "is_fatal", "resume_at", "start_positions"]

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]


class PolledMessage(Protocol):
    """What a poll result is read for here (confluent_kafka.Message has it)."""

    def error(self) -> KafkaError | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


M = TypeVar("M", bound=PolledMessage)

_OFFSET_LOST = frozenset({KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE})


def is_fatal(error: KafkaError) -> bool:
    """librdkafka reports a fatal error (a static member fenced by another with its
    group.instance.id) as code _FATAL, whose fatal() flag is not set."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


@dataclass(frozen=True)
class OffsetLost:
    """The consumer's position in a partition is gone: changes were trimmed before they were
    read (auto.offset.reset is "error": never skipped silently)."""

    topic: str
    partition: int
    offset: int


@dataclass
class Polled(Generic[M]):
    """A poll's records; the run ends at `lost` or `fatal`, the first one met (what came after
    it is not looked at)."""

    records: list[M] = field(default_factory=list)
    lost: OffsetLost | None = None
    fatal: KafkaError | None = None


class Intake:
    """Sorts what polls return, and remembers which partitions were last seen at their end."""

    def __init__(self) -> None:
        self.at_end: set[TopicPartitionKey] = set()

    def sort(self, messages: Iterable[M]) -> Polled[M]:
        polled: Polled[M] = Polled()
        records, at_end = polled.records, self.at_end
        for msg in messages:
            err = msg.error()
            if err is None:
                records.append(msg)
                if at_end:
                    at_end.discard((str(msg.topic()), msg.partition() or 0))
                continue
            where = (str(msg.topic()), msg.partition() or 0)
            if err.code() == KafkaError._PARTITION_EOF:
                at_end.add(where)
            elif err.code() in _OFFSET_LOST:
                polled.lost = OffsetLost(*where, msg.offset() or -1)
                break
            elif is_fatal(err):
                polled.fatal = err
                break
            elif err.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                log.warning("consumer: %s", err)
        return polled

    def rewound(self) -> None:
        """A batch was aborted: its partitions are read again from their committed offsets."""
        self.at_end.clear()

    def all_at_end(self, assigned: int) -> bool:
        """Whether as many partitions as are assigned were last seen at their end."""
        return len(self.at_end) >= assigned


def resume_at(committed: int) -> int:
    """Where a partition is read from: the group's committed offset; the partition's beginning
    where the group committed none."""
    return committed if committed >= 0 else OFFSET_BEGINNING


def start_positions(
    committed: Mapping[TopicPartitionKey, int], low_watermarks: Mapping[TopicPartitionKey, int],
) -> tuple[dict[TopicPartitionKey, int], list[tuple[str, int, int, int]]]:
    """Where newly assigned partitions start (resume_at), and those whose committed offset
    retention trimmed away (topic, partition, committed offset, log start): never skipped
    silently."""
    lost = [(*where, offset, low_watermarks[where]) for where, offset in committed.items()
            if 0 <= offset < low_watermarks[where]]
    return {where: resume_at(offset) for where, offset in committed.items()}, lost
