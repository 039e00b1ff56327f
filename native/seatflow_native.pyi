from collections.abc import Mapping
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
    """Encodes Python values of one schema into Avro bodies (no wire-format header), logical
    types given as their underlying values (decimal as bytes, timestamps as integers).

    ValueError for a schema it does not handle (unions other than [null, T]) and for a value
    that does not fit, TypeError for a value of the wrong type.
    """

    def __init__(self, schema_json: str) -> None: ...
    def encode(self, value: Any) -> bytes: ...
