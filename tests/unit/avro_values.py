"""Hypothesis strategies of values for Avro schemas, as fastavro takes and gives them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

_LONG = st.integers(-(2**63), 2**63 - 1)
_MOMENT = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(UTC))
_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(), "boolean": st.booleans(), "int": st.integers(-(2**31), 2**31 - 1),
    "long": _LONG, "string": st.text(max_size=8), "bytes": st.binary(max_size=8),
    "double": st.floats(allow_nan=False), "float": st.floats(allow_nan=False, width=32),
}


def values(kind: Any, names: dict[str, st.SearchStrategy[Any]] | None = None,
           namespace: str = "") -> st.SearchStrategy[Any]:
    """Values fastavro accepts for an Avro type, logical types in their Python form. Named
    types are remembered in `names` (by name and full name) for later references."""
    names = {} if names is None else names
    if isinstance(kind, list):
        return st.one_of(*(values(k, names, namespace) for k in kind))
    if isinstance(kind, str):
        if kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        return names[kind if "." in kind or not namespace else f"{namespace}.{kind}"]
    logical = kind.get("logicalType")
    if logical == "decimal":
        scale, precision = kind.get("scale", 0), kind["precision"]
        return st.decimals(min_value=-(10 ** (precision - scale)) + 1,
                           max_value=10 ** (precision - scale) - 1, places=scale,
                           allow_nan=False, allow_infinity=False)
    if logical in ("timestamp-millis", "timestamp-micros"):
        # As an int, up to the end of year 9999 (the last moment a datetime reads back).
        last = 253_402_300_799_999 * (1000 if logical == "timestamp-micros" else 1)
        return st.one_of(_MOMENT, st.integers(0, last))
    kind_type = kind["type"]
    if kind_type in ("record", "enum", "fixed"):
        space = kind.get("namespace", namespace)
        full = kind["name"] if "." in kind["name"] or not space else f"{space}.{kind['name']}"
        if kind_type == "record":
            fields = {f["name"]: values(f["type"], names, space) for f in kind["fields"]}
            strategy: st.SearchStrategy[Any] = st.fixed_dictionaries(fields)
        elif kind_type == "enum":
            strategy = st.sampled_from(kind["symbols"])
        else:
            strategy = st.binary(min_size=kind["size"], max_size=kind["size"])
        names[full] = names[kind["name"]] = strategy
        return strategy
    if kind_type == "array":
        return st.lists(values(kind["items"], names, namespace), max_size=3)
    if kind_type == "map":
        return st.dictionaries(st.text(max_size=4), values(kind["values"], names, namespace),
                               max_size=3)
    return values(kind_type, names, namespace)
