"""The schemas in schemas/: they parse, follow the house style and have a compatibility level."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from pipelines.avro.rules import LEVELS, lint_problems
from pipelines.avro.schemas import SCHEMAS_DIR, load_compatibility, local_schemas

pytestmark = pytest.mark.unit

SCHEMAS = local_schemas()
SUBJECTS = [s.subject for s in SCHEMAS]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _fields(schema: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every field of every record in schema, with a path."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch, path)
        elif isinstance(node, dict):
            if node.get("type") == "record":
                for f in node["fields"]:
                    found.append((f"{path}/{f['name']}", f))
                    walk(f["type"], f"{path}/{f['name']}")
            elif node.get("type") == "array":
                walk(node["items"], path)
            elif isinstance(node.get("type"), dict | list):
                walk(node["type"], path)

    walk(schema, "")
    return found


def test_every_output_topic_has_key_and_value_schemas() -> None:
    for topic in ("seat-availability", "section-availability", "event-availability"):
        assert {f"{topic}-key", f"{topic}-value"} <= set(SUBJECTS)
    assert "seatflow.dead-letter-value" in SUBJECTS
    assert {"seatflow.anomalies-key", "seatflow.anomalies-value"} <= set(SUBJECTS)


@pytest.mark.parametrize("schema", SCHEMAS, ids=SUBJECTS)
def test_schema_parses_and_follows_the_house_style(schema: Any) -> None:
    fastavro.parse_schema(schema.parsed)
    assert lint_problems(schema.parsed) == []


@pytest.mark.parametrize("schema", SCHEMAS, ids=SUBJECTS)
def test_namespace_is_seatflows(schema: Any) -> None:
    assert schema.parsed["namespace"].startswith("io.seatflow.")


@pytest.mark.parametrize("schema", SCHEMAS, ids=SUBJECTS)
def test_every_field_has_a_doc(schema: Any) -> None:
    assert schema.parsed.get("doc")
    missing = [path for path, f in _fields(schema.parsed) if not f.get("doc")]
    assert missing == []


@pytest.mark.parametrize("schema", SCHEMAS, ids=SUBJECTS)
def test_optional_fields_default_to_null(schema: Any) -> None:
    for path, f in _fields(schema.parsed):
        if isinstance(f["type"], list) and "null" in f["type"]:
            assert f["type"][0] == "null" and f.get("default", ...) is None, path


@pytest.mark.parametrize("schema", SCHEMAS, ids=SUBJECTS)
def test_times_are_timestamps_and_money_is_decimal(schema: Any) -> None:
    for path, f in _fields(schema.parsed):
        branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
        logical = {b.get("logicalType") for b in branches if isinstance(b, dict)}
        if path.endswith(("_at", "/as_of")):
            assert logical & {"timestamp-millis", "timestamp-micros"}, path
        if path.endswith("price"):
            assert "decimal" in logical, path


def test_compatibility_file_covers_every_subject_with_a_known_level() -> None:
    levels = load_compatibility()
    assert levels.default == "BACKWARD_TRANSITIVE"
    assert set(levels.subjects) == set(SUBJECTS)
    assert set(levels.subjects.values()) <= LEVELS
    assert all(levels.level(s) == "FULL_TRANSITIVE" for s in SUBJECTS if s.endswith("-key"))


def test_compatibility_file_rejects_an_unknown_level(tmp_path: Any) -> None:
    (tmp_path / "compatibility.json").write_text(json.dumps({"default": "SIDEWAYS"}))
    with pytest.raises(ValueError, match="SIDEWAYS"):
        load_compatibility(tmp_path)


def test_an_invalid_schema_is_named_with_its_file(tmp_path: Any) -> None:
    (tmp_path / "broken-value.avsc").write_text('{"type": "record", "name": "B", "fields": [{"name": "x"}]}')
    with pytest.raises(ValueError, match=r"broken-value\.avsc"):
        local_schemas(tmp_path)


SAMPLES: dict[str, dict[str, Any]] = {
    "section-availability-key": {"event_id": 1, "section_code": "101", "price_level_id": 7},
    "section-availability-value": {
        "event_id": 1, "section_code": "101", "price_level_id": 7, "open": 10, "held": 2,
        "sold": 30, "lowest_open_price": Decimal("89.50"), "as_of": NOW, "source_committed_at": NOW},
    "event-availability-key": {"event_id": 1},
    "event-availability-value": {"event_id": 1, "open": 10, "held": 2, "sold": 30, "total": 42,
                                 "as_of": NOW, "source_committed_at": NOW},
    "seatflow.dead-letter-value": {
        "original_key": b"\x00\x00\x00\x00\x01", "original_value": b"\xff", "original_headers":
        [{"name": "h", "value": b"v"}], "source_topic": "cdc.ticketing.seat_inventory",
        "source_partition": 0, "source_offset": 42, "source_timestamp": NOW,
        "reason": "undecodable", "error_class": "WireFormatError", "error_message": "bad",
        "failed_at": NOW, "original_value_length": 1, "original_value_sha256": "a8" * 32,
        "original_truncated": False},
    "seatflow.anomalies-key": {"event_id": 1, "seat_id": 2},
    "seatflow.anomalies-value": {
        "event_id": 1, "seat_id": 2, "rule": "illegal_transition", "message": "OPEN -> SOLD",
        "before_status": "OPEN", "before_version": 3, "after_status": "SOLD", "after_version": 4,
        "after_price_exact": "85.00", "after_hold_expires_at": None,
        "source_topic": "cdc.ticketing.seat_inventory", "source_partition": 0,
        "source_offset": 42, "source_lsn": 99, "source_committed_at": NOW, "detected_at": NOW},
}


@pytest.mark.parametrize("subject", sorted(SAMPLES))
def test_a_record_round_trips(subject: str) -> None:
    parsed = fastavro.parse_schema(json.loads((SCHEMAS_DIR / f"{subject}.avsc").read_text()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, SAMPLES[subject])
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, parsed, None) == SAMPLES[subject]
