"""`seatflow serve` on the real stack: a change committed in PostgreSQL reaches /seats and the
stream with its version; Last-Event-ID resumes without a gap; an older version never wins."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from pipelines.avro import AvroEncoder, registry_client
from pipelines.avro.schemas import load_schema
from pipelines.kafka import clients
from pipelines.kafka.topics import SEAT_AVAILABILITY
from pipelines.partitioning import event_partition
from pipelines.serve.wire import seats_of as changes_seats
from pipelines.settings import Settings
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

SEATS = 8


def open_seats(settings: Settings, count: int) -> tuple[int, list[int]]:
    """An event and `count` of its open seats (the lowest ids)."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        row = conn.execute("SELECT event_id FROM ticketing.seat_inventory WHERE status = 'open'"
                           " GROUP BY event_id ORDER BY count(*) DESC LIMIT 1").fetchone()
        assert row is not None, "no open seat left"
        seats = conn.execute("SELECT seat_id FROM ticketing.seat_inventory"
                             " WHERE event_id = %s AND status = 'open' ORDER BY seat_id LIMIT %s",
                             (row[0], count)).fetchall()
    return int(row[0]), [int(s) for s, in seats]


def touch(settings: Settings, event_id: int, seats: list[int]) -> dict[int, int]:
    """Commit a change of each seat (its price set again: the trigger bumps its version), one
    transaction; their versions after it."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        rows = conn.execute("UPDATE ticketing.seat_inventory SET price = price"
                            " WHERE event_id = %s AND seat_id = ANY(%s) RETURNING seat_id, version",
                            (event_id, seats)).fetchall()
    return {int(s): int(v) for s, v in rows}


def hold(settings: Settings, event_id: int, seats: list[int]) -> dict[int, int]:
    """Hold the seats for a buyer, one transaction; their versions after it."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        found = conn.execute(
            "INSERT INTO ticketing.holds (event_id, buyer_id, seat_count, expires_at)"
            " VALUES (%s, 515151, %s, now() + interval '10 minutes') RETURNING hold_id, expires_at",
            (event_id, len(seats))).fetchone()
        assert found is not None
        hold_id, expires_at = found
        rows = conn.execute(
            "UPDATE ticketing.seat_inventory SET status = 'held', hold_id = %s,"
            " hold_expires_at = %s WHERE event_id = %s AND seat_id = ANY(%s)"
            " RETURNING seat_id, version", (hold_id, expires_at, event_id, seats)).fetchall()
    return {int(s): int(v) for s, v in rows}


class Stream:
    """An SSE connection to an event's stream, read event by event."""

    def __init__(self, url: str, event_id: int, last_event_id: str | None = None) -> None:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=20))
        self._context = self._client.stream("GET", f"{url}/api/events/{event_id}/stream",
                                            headers=headers)
        response = self._context.__enter__()
        assert response.status_code == 200
        self._lines = response.iter_lines()

    def next(self) -> dict[str, Any]:
        current: dict[str, Any] = {}
        for line in self._lines:
            if not line:
                if "event" in current:
                    return current
                current = {}
                continue
            name, _, value = line.partition(":")
            current[name] = json.loads(value[1:]) if name == "data" else value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def close(self) -> None:
        self._context.__exit__(None, None, None)
        self._client.close()


def seat_events_until(stream: Stream, wanted: dict[int, int], *, timeout: float,
                      ) -> list[dict[str, Any]]:
    """The stream's seat changes until every wanted seat has shown its wanted version, each as
    {"id": its frame's id, "data": the change}."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    shown: dict[int, int] = {}
    while any(shown.get(s, 0) < v for s, v in wanted.items()):
        assert time.monotonic() < deadline, (
            f"not in the stream within {timeout:.0f} s: "
            f"{ {s: v for s, v in wanted.items() if shown.get(s, 0) < v} }")
        event = stream.next()
        assert event["event"] != "snapshot", "a snapshot instead of the changes"
        if event["event"] == "changes":
            for data in changes_seats(event["data"]):
                seen.append({"id": event["id"], "data": data})
                shown[data["seat_id"]] = max(shown.get(data["seat_id"], 0), data["version"])
    return seen


def seats_of(url: str, event_id: int) -> dict[int, dict[str, Any]]:
    body = httpx.get(f"{url}/api/events/{event_id}/seats", timeout=30).json()
    return {s["seat_id"]: s for s in body["seats"]}


def test_a_committed_change_reaches_seats_and_the_stream_with_its_version(
        pipeline: Settings, serve_url: str) -> None:
    event_id, seats = open_seats(pipeline, SEATS)
    stream = Stream(serve_url, event_id)
    try:
        snapshot = stream.next()
        assert snapshot["event"] == "snapshot"
        before = {s["seat_id"]: s["version"] for s in snapshot["data"]["seats"]}
        held = hold(pipeline, event_id, seats)
        events = seat_events_until(stream, held, timeout=15)
    finally:
        stream.close()
    last = {e["data"]["seat_id"]: e["data"] for e in events if e["data"]["seat_id"] in held}
    for seat, version in held.items():
        assert version > before[seat]
        assert (last[seat]["status"], last[seat]["version"]) == ("HELD", version)
    now = seats_of(serve_url, event_id)
    assert {s: (now[s]["status"], now[s]["version"]) for s in held} == {
        s: ("HELD", v) for s, v in held.items()}


def test_last_event_id_resumes_after_a_gap_without_missing_a_change(
        pipeline: Settings, serve_url: str) -> None:
    event_id, seats = open_seats(pipeline, SEATS)
    stream = Stream(serve_url, event_id)
    try:
        snapshot = stream.next()
    finally:
        stream.close()
    # Away: three commits of each seat, each its own version.
    versions: dict[int, list[int]] = {s: [] for s in seats}
    for _ in range(3):
        for seat, version in touch(pipeline, event_id, seats).items():
            versions[seat].append(version)
    final = {s: v[-1] for s, v in versions.items()}
    wait_for(lambda: all(seats_of(serve_url, event_id)[s]["version"] >= v
                         for s, v in final.items()), timeout=20, what="serve to have them")
    stream = Stream(serve_url, event_id, last_event_id=snapshot["id"])
    try:
        events = seat_events_until(stream, final, timeout=15)
    finally:
        stream.close()
    ids = [int(e["id"].rsplit(".", 1)[1]) for e in events]
    assert ids == sorted(ids) and ids[0] > int(snapshot["id"].rsplit(".", 1)[1])
    for seat, wanted in versions.items():
        got = [e["data"]["version"] for e in events if e["data"]["seat_id"] == seat]
        assert got == wanted, f"seat {seat}: versions {got}, committed {wanted}"


def test_an_older_version_never_replaces_a_newer_one(pipeline: Settings, serve_url: str) -> None:
    """An old record of a seat published again (a zombie's, a late replay) is not served."""
    event_id, [seat] = open_seats(pipeline, 1)
    newest = touch(pipeline, event_id, [seat])[seat]
    wait_for(lambda: seats_of(serve_url, event_id)[seat]["version"] == newest, timeout=20,
             what="serve to have the seat's newest version")
    registry = registry_client(pipeline)
    keys = AvroEncoder(registry, f"{SEAT_AVAILABILITY}-key",
                       load_schema(f"{SEAT_AVAILABILITY}-key").text)
    values = AvroEncoder(registry, f"{SEAT_AVAILABILITY}-value",
                         load_schema(f"{SEAT_AVAILABILITY}-value").text)
    shown = seats_of(serve_url, event_id)[seat]
    stale = {"event_id": event_id, "seat_id": seat, "status": "SOLD",
             "section_code": shown["section_code"], "row_label": shown["row_label"],
             "seat_number": shown["seat_number"], "price_level_id": shown["price_level_id"],
             "price_level_code": shown["price_level_code"], "price": None,
             "hold_expires_at": None, "source_version": newest - 1, "source_lsn": None,
             "source_committed_at": datetime.now(UTC), "snapshot": False,
             "published_at": datetime.now(UTC)}
    stream = Stream(serve_url, event_id)
    try:
        stream.next()  # the snapshot
        producer = clients.producer(pipeline)
        # In the partition the processor writes the event to, as a replay would be.
        producer.produce(SEAT_AVAILABILITY, key=keys.encode({"event_id": event_id, "seat_id": seat}),
                         value=values.encode(stale),
                         partition=event_partition(event_id, pipeline.partitions))
        assert producer.flush(10) == 0
        # Then a real change: the stream must show it, and nothing of the stale record before.
        after = touch(pipeline, event_id, [seat])[seat]
        events = seat_events_until(stream, {seat: after}, timeout=15)
    finally:
        stream.close()
    # The stream may begin with a snapshot made earlier and the seat's changes since; in any
    # case versions only grow, and the stale record is never among them.
    mine = [e["data"] for e in events if e["data"]["seat_id"] == seat]
    versions = [d["version"] for d in mine]
    assert versions == sorted(set(versions)) and versions[-1] == after
    assert not [d for d in mine if d["status"] == "SOLD"]
    now = seats_of(serve_url, event_id)[seat]
    assert (now["version"], now["status"]) == (after, "OPEN")
