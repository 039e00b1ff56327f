"""ServeState: the version rule, tombstones, redelivery, and resuming from the change log."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.serve.follower import apply_record, quantile
from pipelines.serve.state import ServeState, epoch_ms

pytestmark = pytest.mark.unit

EVENT = 7


def seat_value(seat_id: int, version: int, status: str = "OPEN", *, lsn: int | None = None,
               committed_at: Any = 1_700_000_000_000, section: str = "101") -> dict[str, Any]:
    return {"event_id": EVENT, "seat_id": seat_id, "status": status, "section_code": section,
            "row_label": "A", "seat_number": seat_id, "price_level_id": 1,
            "price_level_code": "P1", "price": Decimal("85.00"), "hold_expires_at": None,
            "source_version": version, "source_lsn": lsn, "source_committed_at": committed_at,
            "snapshot": False, "published_at": committed_at}


def test_a_newer_version_replaces_and_is_a_change_with_its_version() -> None:
    state = ServeState()
    first = state.apply_seat(EVENT, 1, seat_value(1, 1))
    second = state.apply_seat(EVENT, 1, seat_value(1, 2, "SOLD"))
    assert first is not None and second is not None
    assert second.id > first.id
    assert second.kind == "seat"
    assert second.data["version"] == 2 and second.data["status"] == "SOLD"
    assert second.data["price"] == "85.00"
    seats = state.seats(EVENT)
    assert seats is not None and [(s.seat_id, s.status, s.version) for s in seats] == [(1, "SOLD", 2)]


def test_an_older_version_never_replaces_a_newer_one() -> None:
    state = ServeState()
    state.apply_seat(EVENT, 1, seat_value(1, 5, "SOLD"))
    assert state.apply_seat(EVENT, 1, seat_value(1, 4, "OPEN")) is None
    seats = state.seats(EVENT)
    assert seats is not None and seats[0].status == "SOLD" and seats[0].version == 5


def test_a_redelivered_record_changes_nothing_and_tells_nobody() -> None:
    state = ServeState()
    state.apply_seat(EVENT, 1, seat_value(1, 3, "HELD"))
    last = state.last_id
    assert state.apply_seat(EVENT, 1, seat_value(1, 3, "HELD")) is None
    assert state.last_id == last


def test_a_backfill_republishing_the_same_version_repairs_the_seat() -> None:
    state = ServeState()
    state.apply_seat(EVENT, 1, seat_value(1, 3, "HELD"))
    change = state.apply_seat(EVENT, 1, seat_value(1, 3, "SOLD"))
    assert change is not None and change.data["status"] == "SOLD"


def test_a_tombstone_removes_the_seat_and_older_records_do_not_bring_it_back() -> None:
    state = ServeState()
    state.apply_seat(EVENT, 1, seat_value(1, 4))
    gone = state.apply_seat(EVENT, 1, None, deleted=(4, None))
    assert gone is not None and gone.data == {"seat_id": 1, "version": 4, "deleted": True,
                                              "seq": gone.id}
    assert state.seats(EVENT) == []
    assert state.apply_seat(EVENT, 1, seat_value(1, 3)) is None
    assert state.apply_seat(EVENT, 1, seat_value(1, 4)) is None
    assert state.seats(EVENT) == []
    back = state.apply_seat(EVENT, 1, seat_value(1, 5))
    assert back is not None and state.seats(EVENT)[0].version == 5  # type: ignore[index]


def test_a_seat_inserted_again_after_its_delete_is_ordered_by_lsn() -> None:
    state = ServeState()
    state.apply_seat(EVENT, 1, seat_value(1, 9, lsn=100))
    state.apply_seat(EVENT, 1, None, deleted=(9, 200))
    assert state.apply_seat(EVENT, 1, seat_value(1, 1, lsn=300)) is not None
    seats = state.seats(EVENT)
    assert seats is not None and seats[0].version == 1


def test_a_tombstone_older_than_the_seat_is_ignored() -> None:
    state = ServeState()
    state.apply_seat(EVENT, 1, seat_value(1, 6))
    assert state.apply_seat(EVENT, 1, None, deleted=(5, None)) is None
    assert len(state.seats(EVENT) or []) == 1


def test_a_tombstone_read_before_the_seat_keeps_older_records_out() -> None:
    state = ServeState()
    assert state.apply_seat(EVENT, 1, None, deleted=(4, None)) is None
    assert state.apply_seat(EVENT, 1, seat_value(1, 2)) is None
    assert state.seats(EVENT) == []


def test_sections_sum_their_price_levels_with_the_lowest_open_price() -> None:
    state = ServeState()
    ts = datetime(2025, 1, 1, tzinfo=UTC)
    state.apply_section(EVENT, "101", 1, {"open": 2, "held": 1, "sold": 3,
                                          "lowest_open_price": Decimal("90.00"),
                                          "source_committed_at": ts})
    state.apply_section(EVENT, "101", 2, {"open": 1, "held": 0, "sold": 0,
                                          "lowest_open_price": Decimal("55.50"),
                                          "source_committed_at": ts})
    state.apply_section(EVENT, "102", 1, {"open": 0, "held": 0, "sold": 4,
                                          "lowest_open_price": None, "source_committed_at": ts})
    state.apply_event(EVENT, {"open": 3, "held": 1, "sold": 7, "total": 11,
                              "source_committed_at": ts})
    summary = state.summary(EVENT)
    assert summary["totals"] == {"open": 3, "held": 1, "sold": 7, "total": 11,
                                 "source_committed_at": epoch_ms(ts)}
    rows = [(s["section_code"], s["open"], s["held"], s["sold"], s["lowest_open_price"])
            for s in summary["sections"]]
    assert rows == [("101", 3, 1, 3, "55.50"), ("102", 0, 0, 4, None)]
    assert summary["updated_at"] == epoch_ms(ts)


def test_section_codes_sort_as_numbers() -> None:
    state = ServeState()
    for code in ["10", "9", "VIP", "101"]:
        state.apply_section(EVENT, code, 1, {"open": 1, "held": 0, "sold": 0,
                                             "lowest_open_price": None,
                                             "source_committed_at": 0})
    assert [s["section_code"] for s in state.summary(EVENT)["sections"]] == ["9", "10", "101",
                                                                              "VIP"]


def test_changes_since_gives_what_came_after_and_none_past_the_log() -> None:
    state = ServeState(log_size=3)
    ids = [state.apply_seat(EVENT, i, seat_value(i, 1)).id for i in range(1, 6)]  # type: ignore[union-attr]
    assert [c.id for c in state.changes_since(EVENT, ids[2]) or []] == ids[3:]
    assert state.changes_since(EVENT, ids[-1]) == []
    assert state.changes_since(EVENT, ids[1]) is not None  # the three kept are all it missed
    assert state.changes_since(EVENT, ids[0]) is None  # the second change is gone: a gap
    assert state.changes_since(EVENT, ids[-1] + 1) is None  # an id this state never gave out
    assert state.changes_since(EVENT, -1) is None


def test_changes_of_other_events_neither_show_nor_push_out_an_events_own() -> None:
    state = ServeState(log_size=2)
    mine = state.apply_seat(EVENT, 1, seat_value(1, 1))
    for i in range(10):
        state.apply_seat(EVENT + 1, i, seat_value(i, 1))
    assert mine is not None
    assert state.changes_since(EVENT, 0) == [mine]


def test_apply_record_reads_the_deleted_header_of_a_seat_tombstone() -> None:
    state = ServeState()
    key = {"event_id": EVENT, "seat_id": 1}
    apply_record(state, "seat-availability", key, seat_value(1, 2), None)
    change = apply_record(state, "seat-availability", key, None,
                          [("seatflow.deleted", b"2:555")])
    assert change is not None and change.data["deleted"] is True
    assert state.events[EVENT].deleted[1] == (2, 555)


def test_apply_record_routes_section_and_event_records() -> None:
    state = ServeState()
    apply_record(state, "section-availability",
                 {"event_id": EVENT, "section_code": "101", "price_level_id": 1},
                 {"open": 1, "held": 0, "sold": 0, "lowest_open_price": None,
                  "source_committed_at": 5}, None)
    apply_record(state, "event-availability", {"event_id": EVENT},
                 {"open": 1, "held": 0, "sold": 0, "total": 1, "source_committed_at": 5}, None)
    assert state.summary(EVENT)["totals"]["total"] == 1
    assert apply_record(state, "event-availability", {"event_id": EVENT}, None, None) is not None
    assert state.summary(EVENT)["totals"] is None


def test_quantile_is_the_nearest_rank() -> None:
    assert quantile([], 0.5) is None
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile(range(1, 101), 0.99) == 99


# A seat's records in any order, redelivered at will; each (version, status) one commit.
histories = st.lists(st.tuples(st.integers(1, 4), st.integers(1, 12),
                               st.sampled_from(["OPEN", "HELD", "SOLD"])), max_size=60)


@given(histories)
def test_each_seat_ends_at_its_highest_version_whatever_the_order(
        records: list[tuple[int, int, str]]) -> None:
    # One status per (seat, version): a version is one commit.
    status_of = {(seat, version): status for seat, version, status in records}
    state = ServeState()
    for seat, version, _ in records:
        state.apply_seat(EVENT, seat, seat_value(seat, version, status_of[(seat, version)]))
    newest: dict[int, int] = {}
    for seat, version, _ in records:
        newest[seat] = max(newest.get(seat, 0), version)
    held = {s.seat_id: (s.version, s.status) for s in state.seats(EVENT) or []}
    assert held == {seat: (v, status_of[(seat, v)]) for seat, v in newest.items()}


@given(histories, st.integers(0, 60), st.integers(2, 30))
def test_a_client_that_resumes_or_takes_a_snapshot_ends_where_the_state_is(
        records: list[tuple[int, int, str]], cut: int, log_size: int) -> None:
    """A client that follows the changes, drops off after `cut` of them and comes back (with
    its last id: the changes since, or a snapshot when they are gone) holds what the state
    holds, applying with the browser's rule (ignore a version not above the one shown)."""
    status_of = {(seat, version): status for seat, version, status in records}
    state = ServeState(log_size=log_size)
    snapshot = state.snapshot(EVENT)
    client: dict[int, tuple[int, str]] = {}
    last = 0
    for i, (seat, version, _) in enumerate(records):
        state.apply_seat(EVENT, seat, seat_value(seat, version, status_of[(seat, version)]))
        if i < cut:
            for change in state.changes_since(EVENT, last) or []:
                shown = client.get(change.data["seat_id"])
                if shown is None or change.data["version"] > shown[0]:
                    client[change.data["seat_id"]] = (change.data["version"],
                                                      change.data["status"])
                last = change.id
    missed = state.changes_since(EVENT, last)
    if missed is None:
        snapshot = state.snapshot(EVENT)
        assert snapshot is not None
        client = {s["seat_id"]: (s["version"], s["status"]) for s in snapshot["seats"]}
    else:
        for change in missed:
            shown = client.get(change.data["seat_id"])
            if shown is None or change.data["version"] > shown[0]:
                client[change.data["seat_id"]] = (change.data["version"], change.data["status"])
    assert client == {s.seat_id: (s.version, s.status) for s in state.seats(EVENT) or []}
