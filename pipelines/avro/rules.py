"""Pure rules on Avro schemas: can one read the other (Avro's resolution rules), and house style.

The registry has the last word on compatibility; these rules let `seatflow schemas check` judge a
schema under the level kept in the repo even when the registry's level differs (Apicurio's
default is NONE), and explain why a schema breaks. Schemas are the parsed JSON of .avsc files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

__all__ = [
    "LEVELS",
    "Level",
    "compatibility_problems",
    "lint_problems",
    "reader_problems",
]

Level = Literal["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
                "FULL", "FULL_TRANSITIVE"]
LEVELS: frozenset[str] = frozenset(Level.__args__)  # type: ignore[attr-defined]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_NAMED = {"record", "enum", "fixed"}
# Writer type -> reader types that can read it (the Avro specification's promotions).
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
# Logical-type attributes whose change alters meaning without changing the bytes.
_LOGICAL_ATTRS = ("logicalType", "precision", "scale")


class _Names:
    """Named types of one schema by full name, so references by name can be followed."""

    def __init__(self, schema: Any) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self._collect(schema, None)

    def _collect(self, schema: Any, namespace: str | None) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in _NAMED:
                full = _full_name(schema, namespace)
                self.types[full] = schema
                namespace = full.rpartition(".")[0] or None
                for field in schema.get("fields", []):
                    self._collect(field["type"], namespace)
            elif kind == "array":
                self._collect(schema["items"], namespace)
            elif kind == "map":
                self._collect(schema["values"], namespace)
            elif isinstance(kind, dict | list):
                self._collect(kind, namespace)

    def resolve(self, schema: Any) -> Any:
        """The schema itself, with a reference by name replaced by the type it names."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            found = self.types.get(schema) or next(
                (t for full, t in self.types.items() if full.rpartition(".")[2] == schema), None)
            if found is None:
                raise ValueError(f"unknown type name {schema!r}")
            return found
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return self.resolve(schema["type"])
        if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES and len(schema) == 1:
            return schema["type"]
        return schema


def _full_name(schema: Mapping[str, Any], namespace: str | None) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return str(schema["type"])


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    if kind in _NAMED:
        return f"{kind} {schema['name']}"
    if kind == "union":
        return "union [" + ", ".join(_describe(b) for b in schema) + "]"
    if isinstance(schema, dict) and "logicalType" in schema:
        return f"{kind} ({schema['logicalType']})"
    return kind


def reader_problems(reader: Any, writer: Any) -> list[str]:
    """Why data written with `writer` cannot be read with `reader`; empty when it can."""
    return list(_Resolver(_Names(reader), _Names(writer)).problems(reader, writer, ""))


class _Resolver:
    def __init__(self, reader_names: _Names, writer_names: _Names) -> None:
        self.r = reader_names
        self.w = writer_names
        self._seen: set[tuple[int, int]] = set()  # recursive types: each pair is compared once

    def problems(self, reader: Any, writer: Any, path: str) -> Iterator[str]:
        reader, writer = self.r.resolve(reader), self.w.resolve(writer)
        rk, wk = _kind(reader), _kind(writer)
        at = path or "/"
        if wk == "union":
            for i, branch in enumerate(writer):
                if list(self.problems(reader, branch, f"{path}/{i}")):
                    yield (f"{at}: a value of type {_describe(self.w.resolve(branch))} in the writer's "
                           f"union cannot be read as {_describe(reader)}")
            return
        if rk == "union":
            if not any(not list(self.problems(b, writer, path)) for b in reader):
                yield f"{at}: no branch of {_describe(reader)} can read {_describe(writer)}"
            return
        if rk != wk:
            if rk not in _PROMOTIONS.get(wk, set()):
                yield f"{at}: type changed from {_describe(writer)} to {_describe(reader)}"
            return
        yield from self._logical(reader, writer, at)
        if rk in _NAMED and reader["name"].rpartition(".")[2] != writer["name"].rpartition(".")[2] \
                and writer["name"] not in reader.get("aliases", []):
            yield f"{at}: {rk} renamed from {writer['name']} to {reader['name']}"
            return
        if rk == "record":
            yield from self._record(reader, writer, path)
        elif rk == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                yield (f"{at}: enum {reader['name']} lost symbols {', '.join(missing)} "
                       "and has no default")
        elif rk == "fixed" and reader["size"] != writer["size"]:
            yield f"{at}: fixed {reader['name']} size changed from {writer['size']} to {reader['size']}"
        elif rk == "array":
            yield from self.problems(reader["items"], writer["items"], f"{path}/items")
        elif rk == "map":
            yield from self.problems(reader["values"], writer["values"], f"{path}/values")

    def _logical(self, reader: Any, writer: Any, at: str) -> Iterator[str]:
        # Avro's own checker ignores logical types; a unit or scale change silently changes
        # what the numbers mean, so it counts as a break here.
        r = {k: reader.get(k) for k in _LOGICAL_ATTRS} if isinstance(reader, dict) else {}
        w = {k: writer.get(k) for k in _LOGICAL_ATTRS} if isinstance(writer, dict) else {}
        if any(r.get(k) != w.get(k) for k in _LOGICAL_ATTRS):
            yield f"{at}: logical type changed from {_describe(writer)} {w} to {_describe(reader)} {r}"

    def _record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> Iterator[str]:
        pair = (id(reader), id(writer))
        if pair in self._seen:
            return
        self._seen.add(pair)
        written = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            source = next((written[n] for n in names if n in written), None)
            where = f"{path}/fields/{field['name']}"
            if source is None:
                if "default" not in field:
                    yield (f"{where}: field {field['name']!r} is not in the other schema and has "
                           "no default")
                continue
            yield from self.problems(field["type"], source["type"], f"{where}/type")


def compatibility_problems(new: Any, registered: Sequence[Any], level: str) -> list[str]:
    """Why `new` may not follow `registered` (oldest first) under a compatibility level."""
    if level not in LEVELS:
        raise ValueError(f"unknown compatibility level {level!r}; one of {sorted(LEVELS)}")
    if level == "NONE" or not registered:
        return []
    versions = list(enumerate(registered, start=1))
    against = versions if level.endswith("_TRANSITIVE") else versions[-1:]
    problems: list[str] = []
    for number, old in against:
        if level.startswith(("BACKWARD", "FULL")):
            problems += [f"new schema cannot read version {number}: {p}"
                         for p in reader_problems(new, old)]
        if level.startswith(("FORWARD", "FULL")):
            problems += [f"version {number} cannot read the new schema: {p}"
                         for p in reader_problems(old, new)]
    return problems


def lint_problems(schema: Any) -> list[str]:
    """Departures from the house style: a namespace, docs everywhere, defaults on optional fields."""
    problems: list[str] = []
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return ["the top-level schema is not a record"]
    if not schema.get("namespace") and "." not in schema["name"]:
        problems.append(f"record {schema['name']} has no namespace")
    problems += _lint_named(schema, "")
    return problems


def _lint_named(schema: Any, path: str) -> list[str]:
    problems: list[str] = []
    if isinstance(schema, list):
        for branch in schema:
            problems += _lint_named(branch, path)
        return problems
    if not isinstance(schema, dict):
        return problems
    kind = schema.get("type")
    if kind in _NAMED and not schema.get("doc"):
        problems.append(f"{path or '/'}: {kind} {schema['name']} has no doc")
    if kind == "record":
        for field in schema["fields"]:
            where = f"{path}/{field['name']}"
            if not field.get("doc"):
                problems.append(f"{where}: field has no doc")
            ftype = field["type"]
            if isinstance(ftype, list) and "null" in ftype and (
                    ftype[0] != "null" or field.get("default", ...) is not None):
                problems.append(f"{where}: optional field should be [\"null\", ...] with "
                                "default null")
            problems += _lint_named(ftype, where)
    elif kind == "array":
        problems += _lint_named(schema["items"], path)
    elif kind == "map":
        problems += _lint_named(schema["values"], path)
    elif isinstance(kind, dict | list):
        problems += _lint_named(kind, path)
    return problems
