"""Avro resolution rules and compatibility levels, on small schemas."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipelines.avro.rules import compatibility_problems, lint_problems, reader_problems
from pipelines.avro.schemas import load_schema

pytestmark = pytest.mark.unit


def record(*fields: dict[str, Any], name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "io.seatflow.test", "doc": "d",
            "fields": [{"doc": "d", **f} for f in fields]}


V1 = record({"name": "id", "type": "long"}, {"name": "name", "type": "string"})
WITH_OPTIONAL = record({"name": "id", "type": "long"}, {"name": "name", "type": "string"},
                       {"name": "note", "type": ["null", "string"], "default": None})
WITH_REQUIRED = record({"name": "id", "type": "long"}, {"name": "name", "type": "string"},
                       {"name": "note", "type": "string"})
WITHOUT_NAME = record({"name": "id", "type": "long"})
NAME_AS_INT = record({"name": "id", "type": "long"}, {"name": "name", "type": "int"})
ID_AS_INT = record({"name": "id", "type": "int"}, {"name": "name", "type": "string"})


@pytest.mark.parametrize(("new", "level", "breaks"), [
    (WITH_OPTIONAL, "BACKWARD_TRANSITIVE", False),
    (WITH_OPTIONAL, "FULL_TRANSITIVE", False),
    (WITH_REQUIRED, "BACKWARD", True),        # new reader has no value for old records
    (WITH_REQUIRED, "FORWARD", False),        # old readers ignore the extra field
    (WITHOUT_NAME, "BACKWARD", False),        # new reader ignores the old field
    (WITHOUT_NAME, "FORWARD", True),          # old readers need it and it has no default
    (WITHOUT_NAME, "FULL_TRANSITIVE", True),
    (NAME_AS_INT, "BACKWARD", True),
    (ID_AS_INT, "BACKWARD", True),            # long cannot be read as int
    (ID_AS_INT, "FORWARD", False),            # int is promoted to long
    (NAME_AS_INT, "NONE", False),
])
def test_levels(new: dict[str, Any], level: str, breaks: bool) -> None:
    assert bool(compatibility_problems(new, [V1], level)) is breaks


def test_transitive_levels_check_every_version_and_plain_ones_only_the_latest() -> None:
    # v1 has a required 'note'; v2 drops it; v3 adds it back without a default.
    v1, v2, v3 = WITH_REQUIRED, V1, WITH_REQUIRED
    assert compatibility_problems(v3, [v1, v2], "FORWARD") == []
    assert compatibility_problems(v3, [v1, v2], "BACKWARD") != []
    assert compatibility_problems(V1, [WITHOUT_NAME, v2], "BACKWARD") == []
    problems = compatibility_problems(V1, [WITHOUT_NAME, v2], "BACKWARD_TRANSITIVE")
    assert problems == ["new schema cannot read version 1: /fields/name: field 'name' is not in "
                        "the other schema and has no default"]


def test_a_changed_type_names_the_field_and_both_types() -> None:
    assert reader_problems(NAME_AS_INT, V1) == ["/fields/name/type: type changed from string to int"]


def test_unions_enums_and_logical_types() -> None:
    opt_long = record({"name": "x", "type": ["null", "long"], "default": None})
    opt_str = record({"name": "x", "type": ["null", "string"], "default": None})
    assert reader_problems(opt_long, record({"name": "x", "type": "long"})) == []
    assert reader_problems(opt_str, opt_long) != []
    millis = record({"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}})
    micros = record({"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}})
    assert any("logical type" in p for p in reader_problems(micros, millis))
    enum = {"type": "enum", "name": "S", "doc": "d", "symbols": ["A", "B"]}
    fewer = record({"name": "s", "type": {**enum, "symbols": ["A"]}})
    assert reader_problems(fewer, record({"name": "s", "type": enum})) != []
    assert reader_problems(record({"name": "s", "type": {**enum, "symbols": ["A"], "default": "A"}}),
                           record({"name": "s", "type": enum})) == []


def test_named_types_are_followed_by_name() -> None:
    header = {"type": "record", "name": "H", "doc": "d",
              "fields": [{"name": "v", "type": "long", "doc": "d"}]}
    old = record({"name": "a", "type": header}, {"name": "b", "type": "io.seatflow.test.H"})
    new = copy.deepcopy(old)
    new["fields"][0]["type"]["fields"][0]["type"] = "string"
    assert reader_problems(old, old) == []
    # The pair of H types is compared once, though it is used twice.
    assert reader_problems(new, old) == ["/fields/a/type/fields/v/type: type changed from long to string"]
    renamed_ref = copy.deepcopy(old)
    renamed_ref["fields"][1]["type"] = "long"
    assert reader_problems(renamed_ref, old) == ["/fields/b/type: type changed from record H to long"]


def test_the_seat_availability_value_is_compatible_with_itself() -> None:
    parsed = load_schema("seat-availability-value").parsed
    assert compatibility_problems(parsed, [parsed, parsed], "FULL_TRANSITIVE") == []


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "record", "name": "R", "doc": "d", "fields": []}, "has no namespace"),
    (record({"name": "x", "type": "long", "doc": ""}), "field has no doc"),
    (record({"name": "x", "type": ["null", "long"]}), "default null"),
    (record({"name": "x", "type": ["long", "null"], "default": 1}), "default null"),
    ({"type": "enum", "name": "E", "symbols": ["A"]}, "not a record"),
])
def test_lint(schema: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in lint_problems(schema))


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown compatibility level"):
        compatibility_problems(V1, [V1], "SIDEWAYS")
