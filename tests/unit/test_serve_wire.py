"""The stream's `changes` frame: brief seat changes, the newest count per section, totals."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.serve.state import ServeState
from pipelines.serve.wire import format_changes, seats_of
from tests.unit.test_serve_state import EVENT, seat_value

pytestmark = pytest.mark.unit


def frame(state: ServeState, after: int) -> tuple[str, dict[str, Any]]:
    changes = state.changes_since(EVENT, after)
    assert changes
    text = format_changes(changes, "e1").decode()
    head, _, data = text.partition("\ndata: ")
    assert text.endswith("\n\n") and "\n" not in data.rstrip("\n")
    return head, json.loads(data)


def count(section: str, level: int, sold: int) -> dict[str, Any]:
    return {"open": 10 - sold, "held": 0, "sold": sold, "lowest_open_price": Decimal("10.00"),
            "source_committed_at": 1_700_000_000_000 + sold}


def test_a_status_change_is_brief_and_a_new_place_or_price_is_whole() -> None:
    state = ServeState()
    state.apply_seat(EVENT, 1, seat_value(1, 1))
    start = state.last_id
    state.apply_seat(EVENT, 1, seat_value(1, 2, "HELD", committed_at=1_700_000_000_123))
    moved = seat_value(1, 3, "HELD", section="102")
    state.apply_seat(EVENT, 1, moved)
    state.apply_seat(EVENT, 2, seat_value(2, 1))  # a seat the stream has not told of yet
    head, data = frame(state, start)
    assert head == f"id: e1.{state.last_id}\nevent: changes"
    assert data["seq"] == state.last_id
    assert data["seats"][0] == [1, "HELD", 2, 1_700_000_000_123]
    assert data["seats"][1]["section_code"] == "102" and data["seats"][1]["version"] == 3
    assert data["seats"][2]["seat_id"] == 2 and data["seats"][2]["price"] == "85.00"
    assert [(s["seat_id"], s["status"], s["version"]) for s in seats_of(data)] == [
        (1, "HELD", 2), (1, "HELD", 3), (2, "OPEN", 1)]
    assert data["totals"] is None and data["sections"] == []


def test_counts_come_once_each_their_newest_and_totals_only_when_changed() -> None:
    state = ServeState()
    state.apply_seat(EVENT, 1, seat_value(1, 1))
    start = state.last_id
    state.apply_section(EVENT, "101", 1, count("101", 1, 1))
    state.apply_section(EVENT, "102", 1, count("102", 1, 1))
    state.apply_section(EVENT, "101", 1, count("101", 1, 2))
    state.apply_event(EVENT, {"open": 8, "held": 0, "sold": 2, "total": 10,
                              "source_committed_at": None})
    state.apply_event(EVENT, {"open": 7, "held": 0, "sold": 3, "total": 10,
                              "source_committed_at": None})
    _, data = frame(state, start)
    assert [(s["section_code"], s["sold"]) for s in data["sections"]] == [("102", 1), ("101", 2)]
    assert data["totals"]["sold"] == 3 and data["seats"] == []


@given(st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["OPEN", "HELD", "SOLD"]),
                          st.sampled_from(["101", "102"])), min_size=1, max_size=30))
def test_a_client_applying_frames_holds_what_the_state_holds(
        history: list[tuple[int, str, str]]) -> None:
    """Whatever is brief and whatever whole, a client that saw the snapshot and then the frame
    holds every seat as the state does."""
    state = ServeState()
    for seat_id in range(1, 5):
        state.apply_seat(EVENT, seat_id, seat_value(seat_id, 1))
    snapshot = state.snapshot(EVENT)
    assert snapshot is not None
    client = {s["seat_id"]: s for s in snapshot["seats"]}
    versions = dict.fromkeys(range(1, 5), 1)
    for seat_id, status, section in history:
        versions[seat_id] += 1
        state.apply_seat(EVENT, seat_id, seat_value(seat_id, versions[seat_id], status,
                                                    section=section))
    for change in seats_of(frame(state, snapshot["seq"])[1]):
        client[change["seat_id"]] = {**client[change["seat_id"]], **change}
    for seat in state.seats(EVENT) or []:
        shown = {k: v for k, v in client[seat.seat_id].items() if k != "seq"}
        assert shown == seat.json()
