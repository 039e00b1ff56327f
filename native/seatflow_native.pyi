from collections.abc import Callable, Mapping
from typing import Any

class ProjectingDecoder:
    """Decodes Avro record bodies (no wire-format header) of one writer schema.

    projection: None for every field, or a dict of field name -> projection of that field
    (None for the whole of it). ValueError for a schema it does not handle (logical types
    other than decimal).
    """

    def __init__(self, schema_json: str, projection: Mapping[str, Any] | None = None) -> None: ...
    def decode(self, body: bytes) -> Any:
        """The projected value of one record body; ValueError when the bytes do not match."""

class RecordEncoder:
    """Encodes Python values of one schema into Avro bodies, each after `header` (the wire
    format's magic byte and schema id). Logical types are given as their underlying values
    (decimal as bytes, timestamps as integers), or converted by `converters`: top-level field
    name -> callable, applied to a value that is neither None nor an int.

    ValueError for a schema it does not handle (unions other than [null, T]) and for a value
    that does not fit, TypeError for a value of the wrong type.
    """

    def __init__(self, schema_json: str, header: bytes | None = None,
                 converters: Mapping[str, Callable[[Any], Any]] | None = None) -> None: ...
    def encode(self, value: Any) -> bytes: ...

class UnknownSchemaError(LookupError):
    """Not a wire-format record of a schema id the WireDecoder has a reader for."""

class WireDecoder:
    """Reads Confluent wire-format records (magic byte 0, 4-byte big-endian schema id, body)
    with a reader per schema id."""

    def __init__(self) -> None: ...
    def add(self, schema_id: int, reader: ProjectingDecoder | Callable[[bytes], Any]) -> None:
        """reader: a ProjectingDecoder, or any callable of a record body."""
    def decode(self, data: bytes) -> Any:
        """UnknownSchemaError for bytes without the header or of an id without a reader."""
