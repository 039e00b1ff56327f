"""Avro in the Confluent wire format (magic byte, 4-byte schema id, body), schemas cached by id.

confluent-kafka's AvroDeserializer walks the whole writer schema for every record (inline
tags); here each schema is fetched and parsed once, so a record costs only fastavro's decode.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

__all__ = ["AvroDecoder", "AvroEncoder", "WireFormatError"]

_HEADER = struct.Struct(">bI")
MAGIC = 0


class WireFormatError(ValueError):
    """Bytes that are not a Confluent wire-format Avro record, or an unknown schema id."""


class AvroDecoder:
    """Decodes records of any schema id the registry knows; each writer schema parsed once."""

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._schemas: dict[int, Any] = {}

    def writer_schema(self, schema_id: int) -> Any:
        parsed = self._schemas.get(schema_id)
        if parsed is None:
            try:
                schema = self._registry.get_schema(schema_id)
            except SchemaRegistryError as e:
                raise WireFormatError(f"schema id {schema_id} unknown to the registry: {e}") from e
            parsed = fastavro.parse_schema(json.loads(schema.schema_str or "null"))
            self._schemas[schema_id] = parsed
        return parsed

    def decode(self, data: bytes | None) -> Any:
        if data is None:
            return None
        if len(data) < _HEADER.size or data[0] != MAGIC:
            raise WireFormatError(f"not Confluent wire format ({len(data)} bytes, "
                                  f"first byte {data[:1].hex() or 'none'})")
        _, schema_id = _HEADER.unpack_from(data)
        buf = io.BytesIO(data)
        buf.seek(_HEADER.size)
        try:
            return fastavro.schemaless_reader(buf, self.writer_schema(schema_id), None)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError) as e:
            raise WireFormatError(f"body does not match schema id {schema_id}: {e}") from e


class AvroEncoder:
    """Encodes with one registered schema; the schema is looked up, never registered."""

    def __init__(self, registry: SchemaRegistryClient, subject: str, schema_str: str) -> None:
        try:
            registered = registry.lookup_schema(subject, Schema(schema_str, "AVRO"))
        except SchemaRegistryError as e:
            raise WireFormatError(
                f"schema of subject {subject!r} is not registered or differs from schemas/"
                f"{subject}.avsc (run `seatflow schemas register`): {e}") from e
        if registered.schema_id is None:
            raise WireFormatError(f"registry returned no id for subject {subject!r}")
        self.schema_id = registered.schema_id
        self._header = _HEADER.pack(MAGIC, self.schema_id)
        self._schema = fastavro.parse_schema(json.loads(schema_str))

    def encode(self, record: Any) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self._schema, record)
        return buf.getvalue()
