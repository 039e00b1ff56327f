"""Avro in the Confluent wire format (magic byte, 4-byte schema id, body), schemas cached by id.

confluent-kafka's AvroDeserializer walks the whole writer schema for every record (inline
tags); here each schema is fetched and compiled once, and a record is read and written by the
codec, with fastavro for what that does not take.

The codec is chosen here, once: seatflow_native (native/, Rust, the `seatflow[native]` extra)
when it is installed, else pipelines.avro.pure (the same API in Python); Settings.codec
(SEATFLOW_CODEC=auto|native|python) forces one. CODEC_NAME says which runs.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, TypeVar

import fastavro
import requests
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

# httpx or httpx2, whichever the registry client itself uses (it raises that one's errors).
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.logical_writers import LOGICAL_WRITERS
from tenacity import before_sleep_log, retry, retry_if_exception, wait_exponential

from pipelines.settings import Settings, get_settings

__all__ = [
    "CODEC_NAME", "AvroDecoder", "AvroEncoder", "CodecUnavailableError", "RecordWriter",
    "UnknownSchemaIdError", "WireFormatError", "ccompat_client", "is_transient", "load_codec",
    "registry_call", "registry_client", "registry_session", "wire_header",
]

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">bI")
MAGIC = 0
T = TypeVar("T")


class WireFormatError(ValueError):
    """Bytes that are not a Confluent wire-format Avro record, or an unknown schema id."""

    reason = "undecodable"


class UnknownSchemaIdError(WireFormatError):
    """The registry answered that a schema id does not exist: a definite answer."""

    reason = "unknown_schema"


class CodecUnavailableError(ImportError):
    """SEATFLOW_CODEC=native where seatflow_native is not installed."""


def load_codec(choice: str) -> tuple[str, ModuleType]:
    """The codec's name and module for a choice of Settings.codec: auto takes seatflow_native
    when it imports, else the pure-Python one."""
    if choice in ("auto", "native"):
        try:
            import seatflow_native
        except ImportError as e:
            if choice == "native":
                raise CodecUnavailableError(
                    "SEATFLOW_CODEC=native, but seatflow_native is not installed: install "
                    "seatflow[native] (it needs cargo), or unset SEATFLOW_CODEC for the "
                    "pure-Python codec") from e
        else:
            return "native", seatflow_native
    elif choice != "python":
        raise ValueError(f"codec {choice!r}: auto, native or python")
    from pipelines.avro import pure
    return "python", pure


# The codec every AvroDecoder and RecordWriter uses (tests swap `codec` to run both).
CODEC_NAME, codec = load_codec(get_settings().codec)


def ccompat_client(url: str, *, timeout: float = 10.0,
                   auth: tuple[str, str] | None = None) -> SchemaRegistryClient:
    """confluent-kafka's registry client of a Confluent-compatible API URL, sending `auth`
    (user, password) as HTTP basic auth when given."""
    conf: dict[str, Any] = {"url": url, "timeout": timeout}
    if auth is not None:
        conf["basic.auth.user.info"] = f"{auth[0]}:{auth[1]}"
    return SchemaRegistryClient(conf)


def registry_client(settings: Settings, *, timeout: float = 10.0) -> SchemaRegistryClient:
    """The registry client of these settings (its ccompat API), as seatflow builds it: with the
    registry user's credentials (Settings.registry_auth)."""
    return ccompat_client(settings.ccompat_url, timeout=timeout, auth=settings.registry_auth())


def registry_session(settings: Settings) -> requests.Session:
    """A requests session for the registry's REST APIs (at settings.registry_url) that sends the
    registry user's credentials: for the calls confluent-kafka's client does not make."""
    session = requests.Session()
    session.auth = settings.registry_auth()
    return session


def wire_header(schema_id: int) -> bytes:
    """The wire format's header of a schema id (magic byte, 4-byte big-endian id), which a
    RecordWriter writes before every body."""
    return _HEADER.pack(MAGIC, schema_id)


def is_transient(error: BaseException) -> bool:
    """Whether a registry error can pass: anything but a definite 404 (the registry is
    restarting, its database is, a timeout, a 5xx). A 4xx other than 404 is also held on,
    not skipped: it is a misconfiguration that an operator fixes, and no change may be lost
    meanwhile."""
    if isinstance(error, SchemaRegistryError):
        return error.http_status_code != 404
    return isinstance(error, httpx.HTTPError | OSError)


# Bounded backoff, no limit on attempts: the stream holds (nothing is skipped) until the
# registry answers; each wait is logged.
_registry_retry = retry(retry=retry_if_exception(is_transient),
                        wait=wait_exponential(multiplier=0.2, max=5),
                        before_sleep=before_sleep_log(log, logging.WARNING), reraise=True)


def registry_call(call: Callable[[], T]) -> T:
    """`call()` (a registry request), retried while its errors are transient."""
    return _registry_retry(call)()


class AvroDecoder:
    """Decodes records of any schema id the registry knows; each writer schema fetched and
    compiled once.

    Bodies are read by the codec's ProjectingDecoder (a plan compiled from the schema). With a
    projection (field name -> None for the whole field, or a projection of a record's fields),
    only those fields become Python objects and the rest are skipped. Records whose fields to
    be read include logical types that fastavro turns into datetime, date, time or UUID objects
    are decoded whole by fastavro instead (timestamps, dates and times the projection leaves
    out are only skipped).
    """

    def __init__(self, registry: SchemaRegistryClient,
                 projection: Mapping[str, Any] | None = None) -> None:
        self.registry = registry
        self._projection = projection
        self._texts: dict[int, str] = {}
        self._parsed: dict[int, Any] = {}
        self._codec = codec
        self._wire = codec.WireDecoder()  # a reader per schema id met so far

    def _schema_text(self, schema_id: int) -> str:
        text = self._texts.get(schema_id)
        if text is None:
            try:
                schema = registry_call(lambda: self.registry.get_schema(schema_id))
            except SchemaRegistryError as e:  # a 404: is_transient retries the rest
                raise UnknownSchemaIdError(
                    f"schema id {schema_id} unknown to the registry: {e}") from e
            text = self._texts[schema_id] = schema.schema_str or "null"
        return text

    def writer_schema(self, schema_id: int) -> Any:
        """The writer schema of an id, parsed by fastavro (once)."""
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            parsed = self._parsed[schema_id] = fastavro.parse_schema(
                json.loads(self._schema_text(schema_id)))
        return parsed

    def _reader(self, schema_id: int) -> Any:
        try:
            return self._codec.ProjectingDecoder(self._schema_text(schema_id), self._projection)
        except ValueError:  # a logical type left to fastavro (see the class docstring)
            parsed = self.writer_schema(schema_id)

            def reader(body: bytes) -> Any:
                return fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
            return reader

    def decode(self, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            try:
                return self._wire.decode(data)
            except self._codec.UnknownSchemaError:  # no header, or its id's first record
                schema_id = self._schema_id(data)
                self._wire.add(schema_id, self._reader(schema_id))
                return self._wire.decode(data)
        except WireFormatError:
            raise
        except (EOFError, ValueError, IndexError, UnicodeDecodeError) as e:
            raise WireFormatError(f"body does not match schema id {self._schema_id(data)}: "
                                  f"{e}") from e

    @staticmethod
    def _schema_id(data: bytes) -> int:
        if len(data) < _HEADER.size or data[0] != MAGIC:
            raise WireFormatError(f"not Confluent wire format ({len(data)} bytes, "
                                  f"first byte {data[:1].hex() or 'none'})")
        return int(_HEADER.unpack_from(data)[1])


class RecordWriter:
    """Writes records of one schema with the codec's RecordEncoder, which (natively) converts
    the top-level decimals and timestamps with fastavro's own converters; with fastavro itself
    what that encoder does not take (other unions, nested logical values, a value of the wrong
    type: fastavro then gives its verdict). The same bytes either way. Records fastavro wrote
    because the codec would not are counted in `fallbacks`, and the first is logged with its
    reason: a fallback is correct but slow. After GIVE_UP refusals in a row (a Debezium
    envelope's nested decimals, which the native encoder does not convert), the writer stops
    asking the codec first, which would only add its attempt to fastavro's time. `header`
    comes before every body."""

    GIVE_UP = 16

    def __init__(self, schema: Any, *, header: bytes = b"") -> None:
        self._schema = fastavro.parse_schema(schema)
        self._header = header
        # The native encoder takes a record as an exact dict only (its fields read as a dict's).
        self._records = isinstance(schema, dict) and schema.get("type") == "record"
        self._name = str(schema.get("name", "?")) if isinstance(schema, dict) else str(schema)
        self.fallbacks = 0  # records fastavro wrote because the codec's encoder did not
        self._refused_in_a_row = 0
        self._refused = ""
        try:
            self._encoder: Any = codec.RecordEncoder(
                json.dumps(schema), header, dict(_converters(schema)))
        except ValueError as e:
            self._encoder = None
            self._refused = f"the codec does not take the schema: {e}"

    def encode(self, record: Any) -> bytes:
        """The header and the record's Avro body."""
        reason = self._refused
        if self._encoder is not None:
            if record.__class__ is dict or not self._records:
                try:
                    out: bytes = self._encoder.encode(record)
                except (ValueError, TypeError, OverflowError) as e:
                    reason = str(e)  # fastavro below writes it, or says what is wrong
                else:
                    self._refused_in_a_row = 0
                    return out
            else:
                reason = f"a record of type {type(record).__name__}, not dict"
        buf = io.BytesIO(self._header)
        buf.seek(len(self._header))
        fastavro.schemaless_writer(buf, self._schema, record)
        self._fell_back(reason)
        return buf.getvalue()

    def _fell_back(self, reason: str) -> None:
        self.fallbacks += 1
        if self.fallbacks == 1:
            log.info("fastavro wrote a record of %s that the %s codec did not take (%s); the "
                     "writer counts the others in fallbacks", self._name, CODEC_NAME, reason)
        if self._encoder is not None:
            self._refused_in_a_row += 1
            if self._refused_in_a_row >= self.GIVE_UP:
                self._encoder = None
                self._refused = f"{self.GIVE_UP} records in a row refused, the last: {reason}"
                log.info("%s: the %s codec refused %d records in a row; fastavro writes the "
                         "rest (%s)", self._name, CODEC_NAME, self.GIVE_UP, reason)


class AvroEncoder(RecordWriter):
    """Encodes with one registered schema in the wire format; the schema is looked up, never
    registered."""

    def __init__(self, registry: SchemaRegistryClient, subject: str, schema_str: str) -> None:
        try:
            registered = registry_call(
                lambda: registry.lookup_schema(subject, Schema(schema_str, "AVRO")))
        except SchemaRegistryError as e:
            raise WireFormatError(
                f"schema of subject {subject!r} is not registered or differs from schemas/"
                f"{subject}.avsc (run `seatflow schemas register`): {e}") from e
        if registered.schema_id is None:
            raise WireFormatError(f"registry returned no id for subject {subject!r}")
        self.schema_id = registered.schema_id
        super().__init__(json.loads(schema_str), header=wire_header(self.schema_id))


def _schema_name(schema: Any) -> str:
    return str(schema.get("name", "?")) if isinstance(schema, dict) else str(schema)


def _converters(schema: Any) -> list[tuple[str, Callable[[Any], Any]]]:
    """fastavro's converters of the record's top-level logical types (in a [null, T] too)."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return []
    found = []
    for field in schema["fields"]:
        kind = field["type"]
        if isinstance(kind, list):
            others = [k for k in kind if k != "null"]
            kind = others[0] if len(others) == 1 else None
        convert = _converter(kind)
        if convert is not None:
            found.append((field["name"], convert))
    return found


def _converter(kind: Any) -> Callable[[Any], Any] | None:
    if not isinstance(kind, dict) or "logicalType" not in kind:
        return None
    write = LOGICAL_WRITERS.get(f"{kind['type']}-{kind['logicalType']}")
    if write is None:
        return None
    if kind["logicalType"] != "decimal":
        return lambda value: write(value, kind)
    done: dict[Any, Any] = {}

    def decimal(value: Any) -> Any:
        """Few distinct prices: each converted once. (Equal Decimals, 85 and 85.00 or 0 and
        -0, are written alike.)"""
        out = done.get(value)
        if out is None:
            out = write(value, kind)
            if len(done) < 10_000:
                done[value] = out
        return out
    return decimal
