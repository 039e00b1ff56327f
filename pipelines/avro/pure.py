"""The pure-Python Avro codec: seatflow_native's API (native/seatflow_native.pyi), for where the
native one is not installed (no Rust toolchain at install time).

pipelines.avro picks one of the two. Records are written by fastavro; bodies are read by a plan
compiled once per writer schema (fastavro parses the schema and resolves its names), so that
the results and the errors are the native decoder's: only the projected fields become Python
objects, the others are skipped, and bytes that do not match (cut short, left over, a boolean
byte other than 0 or 1, an enum index or union branch out of range, invalid UTF-8) are a
ValueError, where fastavro's reader is lenient about some of them.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import fastavro
from fastavro.read import LOGICAL_READERS

__all__ = ["ProjectingDecoder", "RecordEncoder", "UnknownSchemaError", "WireDecoder"]

# Reads the value at an offset: (value, offset after it). Skips it: the offset after it.
Read = Callable[[bytes, int], tuple[Any, int]]
Skip = Callable[[bytes, int], int]

_MAX_DEPTH = 64
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
# Logical types that fastavro turns into objects of their own (datetime, date, time, UUID), as
# the native decoder refuses them too: read only where the projection leaves them out.
_OBJECT_LOGICAL = {key for key in LOGICAL_READERS if not key.endswith("-decimal")} | {
    "long-timestamp-nanos", "long-local-timestamp-nanos"}
_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")
_U64 = (1 << 64) - 1


class UnknownSchemaError(LookupError):
    """Not a wire-format record of a schema id the WireDecoder has a reader for."""


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint (IndexError past the end: the caller says truncated)."""
    byte = data[pos]
    pos += 1
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos
    value, shift = byte & 0x7F, 7
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            value &= _U64
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift >= 70:
            raise ValueError(f"varint longer than 10 bytes at offset {pos}")


def _take(data: bytes, pos: int, n: int) -> int:
    """The offset after n bytes from pos."""
    end = pos + n
    if end > len(data):
        raise ValueError(f"truncated: {n} bytes wanted at offset {pos} of {len(data)}")
    return end


def _length(data: bytes, pos: int) -> tuple[int, int]:
    n, pos = _long(data, pos)
    if n < 0:
        raise ValueError(f"negative length {n} at offset {pos}")
    return n, pos


# Array items that take no bytes (null, an empty record) one record may hold, as in the native
# decoder: an array's item count comes before its items, so without a bound a few bytes that
# claim 2^62 such items would keep the decoder busy for ever; every other item takes at least
# a byte, and running out of bytes ends the loop. Counted per record (per thread).
MAX_EMPTY_ITEMS = 1 << 20
_empty_items = threading.local()


def _empty_item(pos: int) -> None:
    count = getattr(_empty_items, "count", 0) + 1
    _empty_items.count = count
    if count > MAX_EMPTY_ITEMS:
        raise ValueError(f"more than {MAX_EMPTY_ITEMS} array items of zero bytes, at offset {pos}")


def _block(data: bytes, pos: int) -> tuple[int, int]:
    """Items of the next array or map block (0 at the end); a negative count comes with the
    block's size in bytes, read and ignored."""
    count, pos = _long(data, pos)
    if count < 0:
        _, pos = _long(data, pos)
        count = -count
    return count, pos


def _read_null(data: bytes, pos: int) -> tuple[Any, int]:
    return None, pos


def _skip_null(data: bytes, pos: int) -> int:
    return pos


def _read_boolean(data: bytes, pos: int) -> tuple[Any, int]:
    byte = data[pos]
    if byte > 1:
        raise ValueError(f"boolean byte {byte} at offset {pos}")
    return byte == 1, pos + 1


def _skip_boolean(data: bytes, pos: int) -> int:
    return _take(data, pos, 1)


def _skip_long(data: bytes, pos: int) -> int:
    return _long(data, pos)[1]


def _read_float(data: bytes, pos: int) -> tuple[Any, int]:
    end = _take(data, pos, 4)
    return _FLOAT.unpack_from(data, pos)[0], end


def _read_double(data: bytes, pos: int) -> tuple[Any, int]:
    end = _take(data, pos, 8)
    return _DOUBLE.unpack_from(data, pos)[0], end


def _fixed_skip(size: int) -> Skip:
    return lambda data, pos: _take(data, pos, size)


def _read_bytes(data: bytes, pos: int) -> tuple[Any, int]:
    n, pos = _length(data, pos)
    end = _take(data, pos, n)
    return data[pos:end], end


def _skip_sized(data: bytes, pos: int) -> int:
    byte = data[pos]  # lengths below 64 fit one byte: most strings
    if byte < 0x80 and not byte & 1:
        end = pos + 1 + (byte >> 1)
        if end <= len(data):
            return end
    n, pos = _length(data, pos)
    return _take(data, pos, n)


def _read_string(data: bytes, pos: int) -> tuple[Any, int]:
    at = pos
    n, pos = _length(data, pos)
    end = _take(data, pos, n)
    try:
        return data[pos:end].decode(), end
    except UnicodeDecodeError as e:
        raise ValueError(f"string at offset {at}: {e}") from None


class _Compiler:
    """Compiles a parsed writer schema and a projection into a reader and a skipper."""

    def __init__(self, names: dict[str, Any]) -> None:
        self.names = names
        self.decimals: dict[tuple[bytes, int], Decimal] = {}

    def compile(self, schema: Any, projection: Any, skipping: bool, depth: int) -> tuple[Read, Skip]:
        if depth > _MAX_DEPTH:
            raise ValueError("recursive schemas are not supported")
        if isinstance(schema, list):
            return self._union([self.compile(s, projection, skipping, depth) for s in schema])
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self._primitive(schema)
            named = self.names.get(schema)
            if named is None:
                raise ValueError(f"unknown schema name {schema}")
            return self.compile(named, projection, skipping, depth + 1)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical == "decimal" and kind in ("bytes", "fixed"):
            return self._decimal(schema.get("size"), int(schema.get("scale", 0)))
        if logical is not None and f"{kind}-{logical}" in _OBJECT_LOGICAL and not skipping:
            raise ValueError(f"unsupported type or logical type: {kind} {logical}")
        if kind == "record":
            return self._record(schema, projection, skipping, depth)
        if kind == "enum":
            return self._enum(schema["symbols"])
        if kind == "fixed":
            return self._fixed(int(schema["size"]))
        if kind == "array":
            return self._array(self.compile(schema["items"], projection, skipping, depth + 1))
        if kind == "map":
            return self._map(self.compile(schema["values"], projection, skipping, depth + 1))
        return self.compile(kind, projection, skipping, depth + 1)

    @staticmethod
    def _primitive(kind: str) -> tuple[Read, Skip]:
        return {
            "null": (_read_null, _skip_null),
            "boolean": (_read_boolean, _skip_boolean),
            "int": (_long, _skip_long),
            "long": (_long, _skip_long),
            "float": (_read_float, _fixed_skip(4)),
            "double": (_read_double, _fixed_skip(8)),
            "bytes": (_read_bytes, _skip_sized),
            "string": (_read_string, _skip_sized),
        }[kind]

    def _decimal(self, size: int | None, scale: int) -> tuple[Read, Skip]:
        done = self.decimals

        def read(data: bytes, pos: int) -> tuple[Any, int]:
            if size is None:
                n, pos = _length(data, pos)
            else:
                n = size
            end = _take(data, pos, n)
            raw = data[pos:end]
            value = done.get((raw, scale))
            if value is None:  # each value built once, as the native decoder does
                value = Decimal(f"{int.from_bytes(raw, 'big', signed=True)}E-{scale}")
                if len(done) < 10_000:
                    done[raw, scale] = value
            return value, end
        return read, (_skip_sized if size is None else _fixed_skip(size))

    @staticmethod
    def _fixed(size: int) -> tuple[Read, Skip]:
        def read(data: bytes, pos: int) -> tuple[Any, int]:
            end = _take(data, pos, size)
            return data[pos:end], end
        return read, _fixed_skip(size)

    @staticmethod
    def _enum(symbols: list[str]) -> tuple[Read, Skip]:
        def read(data: bytes, pos: int) -> tuple[Any, int]:
            index, pos = _long(data, pos)
            if not 0 <= index < len(symbols):
                raise ValueError(f"enum index {index} out of range")
            return symbols[index], pos
        return read, _skip_long

    @staticmethod
    def _union(branches: list[tuple[Read, Skip]]) -> tuple[Read, Skip]:
        readers = [read for read, _ in branches]
        skippers = [skip for _, skip in branches]
        count = len(branches)

        def index(data: bytes, pos: int) -> tuple[int, int]:
            byte = data[pos]  # branch indexes below 64 fit one byte: most unions
            found, pos = ((byte >> 1) ^ -(byte & 1), pos + 1) if byte < 0x80 else _long(data, pos)
            if not 0 <= found < count:
                raise ValueError(f"union branch {found} out of range")
            return found, pos

        def read(data: bytes, pos: int) -> tuple[Any, int]:
            found, pos = index(data, pos)
            return readers[found](data, pos)

        def skip(data: bytes, pos: int) -> int:
            found, pos = index(data, pos)
            return skippers[found](data, pos)
        return read, skip

    @staticmethod
    def _array(item: tuple[Read, Skip]) -> tuple[Read, Skip]:
        read_item, skip_item = item

        def read(data: bytes, pos: int) -> tuple[Any, int]:
            out: list[Any] = []
            while True:
                count, pos = _block(data, pos)
                if count == 0:
                    return out, pos
                for _ in range(count):
                    start = pos
                    value, pos = read_item(data, pos)
                    out.append(value)
                    if pos == start:
                        _empty_item(pos)

        def skip(data: bytes, pos: int) -> int:
            while True:
                count, pos = _block(data, pos)
                if count == 0:
                    return pos
                for _ in range(count):
                    start = pos
                    pos = skip_item(data, pos)
                    if pos == start:
                        _empty_item(pos)
        return read, skip

    @staticmethod
    def _map(item: tuple[Read, Skip]) -> tuple[Read, Skip]:
        read_value, skip_value = item

        def read(data: bytes, pos: int) -> tuple[Any, int]:
            out: dict[str, Any] = {}
            while True:
                count, pos = _block(data, pos)
                if count == 0:
                    return out, pos
                for _ in range(count):
                    at = pos
                    try:
                        key, pos = _read_string(data, pos)
                    except ValueError as e:
                        raise ValueError(f"map key at offset {at}: {e}") from None
                    out[key], pos = read_value(data, pos)

        def skip(data: bytes, pos: int) -> int:
            while True:
                count, pos = _block(data, pos)
                if count == 0:
                    return pos
                for _ in range(count):
                    pos = skip_value(data, _skip_sized(data, pos))
        return read, skip

    def _record(self, schema: Any, projection: Any, skipping: bool,
                depth: int) -> tuple[Read, Skip]:
        fields: list[tuple[str | None, Read, Skip]] = []  # name None: skipped
        for field in schema["fields"]:
            name = field["name"]
            keep = projection is None or name in projection
            sub = projection[name] if projection is not None and keep else None
            read_field, skip_field = self.compile(field["type"], sub, skipping or not keep,
                                                  depth + 1)
            fields.append((name if keep else None, read_field, skip_field))
        skips = [skip for _, _, skip in fields]

        def read(data: bytes, pos: int) -> tuple[Any, int]:
            out = {}
            for name, read_field, skip_field in fields:
                if name is None:
                    pos = skip_field(data, pos)
                else:
                    out[name], pos = read_field(data, pos)
            return out, pos

        def skip(data: bytes, pos: int) -> int:
            for skip_field in skips:
                pos = skip_field(data, pos)
            return pos
        return read, skip


def _check_projection(projection: Any) -> None:
    if projection is None:
        return
    if not isinstance(projection, dict):
        raise ValueError("a projection is None or a dict of field name -> projection")
    for sub in projection.values():
        _check_projection(sub)


def _parse(schema_json: str) -> tuple[Any, dict[str, Any]]:
    """The schema parsed by fastavro, and its named types by full name."""
    names: dict[str, Any] = {}
    try:
        return fastavro.parse_schema(json.loads(schema_json), named_schemas=names,
                                     _write_hint=False), names
    except Exception as e:  # fastavro's schema errors have no common base
        raise ValueError(f"not an Avro schema: {e}") from e


class ProjectingDecoder:
    """Decodes Avro record bodies (no wire-format header) of one writer schema, building only
    the projected fields. ValueError for a schema it does not handle (logical types other than
    decimal, where they are read)."""

    def __init__(self, schema_json: str, projection: Mapping[str, Any] | None = None) -> None:
        _check_projection(projection)
        schema, names = _parse(schema_json)
        self._read = _Compiler(names).compile(schema, projection, False, 0)[0]

    def decode(self, body: bytes) -> Any:
        """The projected value of one record body; ValueError when the bytes do not match."""
        body = bytes(body)
        _empty_items.count = 0
        try:
            value, pos = self._read(body, 0)
        except IndexError:  # a varint or a boolean past the end
            raise ValueError(f"truncated: the body ends at offset {len(body)}") from None
        if pos != len(body):
            raise ValueError(f"{len(body) - pos} bytes left after the record")
        return value


class RecordEncoder:
    """Encodes Python values of one schema into Avro bodies, each after `header`, with
    fastavro. `converters` is taken for the native encoder's signature: fastavro converts the
    logical values itself, with the same converters. ValueError or TypeError (fastavro's) for a
    value that does not fit."""

    def __init__(self, schema_json: str, header: bytes | None = None,
                 converters: Mapping[str, Callable[[Any], Any]] | None = None) -> None:
        self._schema = _parse(schema_json)[0]
        self._header = bytes(header or b"")

    def encode(self, value: Any) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self._schema, value)
        return buf.getvalue()


class WireDecoder:
    """Reads Confluent wire-format records (magic byte 0, 4-byte big-endian schema id, body)
    with a reader per schema id."""

    def __init__(self) -> None:
        self._readers: dict[int, Callable[[bytes], Any]] = {}

    def add(self, schema_id: int, reader: ProjectingDecoder | Callable[[bytes], Any]) -> None:
        """reader: a ProjectingDecoder, or any callable of a record body."""
        self._readers[schema_id] = reader.decode if isinstance(reader, ProjectingDecoder) else reader

    def decode(self, data: bytes) -> Any:
        """UnknownSchemaError for bytes without the header or of an id without a reader."""
        if len(data) < 5 or data[0] != 0:
            raise UnknownSchemaError("not wire format")
        schema_id = int.from_bytes(data[1:5], "big")
        reader = self._readers.get(schema_id)
        if reader is None:
            raise UnknownSchemaError(schema_id)
        return reader(bytes(data[5:]))
