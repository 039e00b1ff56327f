"""The processor's codecs: a consumed CDC record's bytes into what the engine takes, and the
engine's encoders, their schemas looked up in the registry once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka.schema_registry import SchemaRegistryClient

from pipelines.avro import AvroDecoder, AvroEncoder, WireFormatError
from pipelines.avro.schemas import load_schema
from pipelines.kafka.topics import (
    ANOMALIES,
    DEAD_LETTER,
    EVENT_AVAILABILITY,
    SEAT_AVAILABILITY,
    SECTION_AVAILABILITY,
)
from pipelines.processor.config import ProcessorConfig, ProcessorError
from pipelines.processor.core import ENVELOPE_FIELDS, ChangeError, decode_seat_change
from pipelines.processor.engine import (
    Decoded,
    Encoders,
    Message,
    ReferenceChange,
    Truncate,
    Undecodable,
)

__all__ = ["Decoder", "RecordDecoder", "lookup_encoders"]


class Decoder(Protocol):
    """Wire-format bytes to a record (AvroDecoder)."""

    def decode(self, data: bytes | None) -> Any: ...


@dataclass(frozen=True)
class RecordDecoder:
    """Reads the CDC records of the processor's input topics."""

    whole: Decoder  # the reference tables' envelopes
    changes: Decoder  # seat_inventory envelopes: only what decode_seat_change reads
    table_of: Mapping[str, str]  # CDC topic -> its reference table

    @classmethod
    def of(cls, registry: SchemaRegistryClient, config: ProcessorConfig) -> RecordDecoder:
        return cls(AvroDecoder(registry), AvroDecoder(registry, projection=ENVELOPE_FIELDS),
                   {topic: table for table, topic in config.reference_topics.items()})

    def decode(self, msg: Message) -> Decoded:
        """A seat change, a reference change or a truncate; Undecodable for bytes that cannot
        be read as a change at all; None for Debezium's tombstone after a delete (the delete
        itself carries the change)."""
        raw = msg.value()
        if raw is None:
            return None
        table = self.table_of.get(str(msg.topic()))  # a reference table, or None: seat_inventory
        try:
            envelope = (self.whole if table else self.changes).decode(raw)
            if not isinstance(envelope, dict):
                raise ChangeError("not_a_record", f"decoded to {type(envelope).__name__}")
            if table:
                return ReferenceChange(table, envelope)
            if envelope.get("op") == "t":
                return Truncate(envelope)
            return decode_seat_change(envelope)
        except (ChangeError, WireFormatError) as e:
            return Undecodable(e.reason, e)
        except (KeyError, TypeError, ValueError) as e:
            return Undecodable("undecodable", e)


def lookup_encoders(registry: SchemaRegistryClient, config: ProcessorConfig) -> Encoders:
    """The engine's encoders, each with its output topic's registered schema."""
    def enc(topic: str, base: str, part: str) -> AvroEncoder:
        return AvroEncoder(registry, f"{topic}-{part}", load_schema(f"{base}-{part}").text)

    try:
        return Encoders(
            enc(config.seat_topic, SEAT_AVAILABILITY, "key"),
            enc(config.seat_topic, SEAT_AVAILABILITY, "value"),
            enc(config.section_topic, SECTION_AVAILABILITY, "key"),
            enc(config.section_topic, SECTION_AVAILABILITY, "value"),
            enc(config.event_topic, EVENT_AVAILABILITY, "key"),
            enc(config.event_topic, EVENT_AVAILABILITY, "value"),
            enc(config.dead_letter_topic, DEAD_LETTER, "value"),
            enc(config.anomaly_topic, ANOMALIES, "key"),
            enc(config.anomaly_topic, ANOMALIES, "value"))
    except WireFormatError as e:
        raise ProcessorError(str(e)) from e
