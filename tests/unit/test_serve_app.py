"""The serve app through HTTP over a state filled by hand (no Kafka): the API, its errors, the
live stream with Last-Event-ID, health and metrics, the page."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines.serve.app import ServeApp, create_app, parse_last_event_id
from pipelines.serve.state import ServeState
from pipelines.serve.wire import seats_of
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

EVENT = 7
T0 = 1_700_000_000_000


def seat(seat_id: int, version: int, status: str = "OPEN", section: str = "101",
         row: str = "A") -> dict[str, Any]:
    return {"event_id": EVENT, "seat_id": seat_id, "status": status, "section_code": section,
            "row_label": row, "seat_number": seat_id, "price_level_id": 1,
            "price_level_code": "P1", "price": Decimal("85.00"), "source_version": version,
            "source_lsn": None, "source_committed_at": T0 + version}


def filled_state() -> ServeState:
    state = ServeState()
    for i in range(1, 4):
        state.apply_seat(EVENT, i, seat(i, 1))
    state.apply_seat(EVENT, 4, seat(4, 2, "SOLD", section="102"))
    state.apply_section(EVENT, "101", 1, {"open": 3, "held": 0, "sold": 0,
                                          "lowest_open_price": Decimal("85.00"),
                                          "source_committed_at": T0})
    state.apply_section(EVENT, "102", 1, {"open": 0, "held": 0, "sold": 1,
                                          "lowest_open_price": None, "source_committed_at": T0})
    state.apply_event(EVENT, {"open": 3, "held": 0, "sold": 1, "total": 4,
                              "source_committed_at": T0 + 2})
    return state


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return create_app(Settings(home=tmp_path), state=filled_state(), follow=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def test_events_lists_each_event_with_its_totals(client: TestClient) -> None:
    body = client.get("/api/events").json()
    assert body == {"events": [{"event_id": EVENT, "seats": 4, "updated_at": T0 + 2,
                                "totals": {"open": 3, "held": 0, "sold": 1, "total": 4,
                                           "source_committed_at": T0 + 2}}]}


def test_an_event_has_its_sections_with_counts_and_the_lowest_open_price(
        client: TestClient) -> None:
    body = client.get(f"/api/events/{EVENT}").json()
    assert body["totals"]["total"] == 4
    assert [(s["section_code"], s["open"], s["held"], s["sold"], s["lowest_open_price"])
            for s in body["sections"]] == [("101", 3, 0, 0, "85.00"), ("102", 0, 0, 1, None)]


def test_seats_give_status_and_source_version_and_filter_by_section(client: TestClient) -> None:
    every = client.get(f"/api/events/{EVENT}/seats").json()["seats"]
    assert [(s["seat_id"], s["status"], s["version"]) for s in every] == [
        (1, "OPEN", 1), (2, "OPEN", 1), (3, "OPEN", 1), (4, "SOLD", 2)]
    one = client.get(f"/api/events/{EVENT}/seats", params={"section": "102"}).json()["seats"]
    assert [s["seat_id"] for s in one] == [4]
    assert one[0]["price"] == "85.00" and one[0]["row_label"] == "A"


@pytest.mark.parametrize(("path", "status", "error"), [
    ("/api/events/999", 404, "unknown_event"),
    ("/api/events/999/seats", 404, "unknown_event"),
    ("/api/events/999/stream", 404, "unknown_event"),
    (f"/api/events/{EVENT}/seats?section=999", 404, "unknown_section"),
    ("/api/events/abc", 400, "bad_request"),
    ("/api/events/-1", 400, "bad_request"),
    (f"/api/events/{EVENT}/seats?section=", 400, "bad_request"),
    (f"/api/events/{EVENT}/seats?section=%3Cscript%3E", 400, "bad_request"),
    ("/api/nothing", 404, "not_found"),
])
def test_bad_requests_get_a_json_error(client: TestClient, path: str, status: int,
                                       error: str) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and body["message"]


def test_healthz_is_503_until_ready(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path), state=ServeState(), follow=False)
    serve: ServeApp = app.state.serve
    with TestClient(app) as client:
        serve.ready_override = False
        assert client.get("/healthz").status_code == 503
        serve.ready_override = True
        assert client.get("/healthz").json()["ready"] is True


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in ("seatflow_serve_clients", "seatflow_serve_changes_fanned_out_total",
                 "seatflow_serve_ready"):
        assert name in response.text


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    for path in ("/", f"/events/{EVENT}"):
        page = client.get(path)
        assert page.status_code == 200 and 'id="seat-map"' in page.text
        assert 'id="status-line"' in page.text and 'id="offline"' in page.text
    assert "EventSource" in client.get("/static/app.js").text
    assert client.get("/static/style.css").status_code == 200


def test_last_event_id_resumes_only_ids_of_this_process() -> None:
    assert parse_last_event_id("ab12.40", "ab12") == 40
    assert parse_last_event_id("ff00.40", "ab12") is None  # another process's id
    assert parse_last_event_id("ab12.x", "ab12") is None
    assert parse_last_event_id(None, "ab12") is None


# --- the stream, over a real HTTP connection (TestClient waits for a response's end) -------

@pytest.fixture
def server(app: FastAPI) -> Iterator[tuple[str, ServeApp]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", app.state.serve
    running.should_exit = True
    thread.join(10)


def read_events(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """The next `count` SSE events of a response's lines (id, event, data parsed)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "event" in current:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        current[name] = json.loads(value) if name == "data" else value
    raise AssertionError(f"stream ended after {events}")


def change(serve: ServeApp, seat_id: int, version: int, status: str) -> int:
    with serve.state.lock:
        applied = serve.state.apply_seat(EVENT, seat_id, seat(seat_id, version, status))
    assert applied is not None
    serve.notify({EVENT})  # as the follower does, from another thread
    return applied.id


def test_the_stream_starts_with_a_snapshot_then_sends_changes_with_versions(
        server: tuple[str, ServeApp]) -> None:
    url, serve = server
    with httpx.Client(timeout=10) as http, http.stream(
            "GET", f"{url}/api/events/{EVENT}/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        [snapshot] = read_events(lines, 1)
        assert snapshot["event"] == "snapshot"
        assert [s["version"] for s in snapshot["data"]["seats"]] == [1, 1, 1, 2]
        assert snapshot["data"]["totals"]["total"] == 4
        change(serve, 1, 2, "HELD")
        [held] = read_events(lines, 1)
        assert held["event"] == "changes"
        assert [(s["seat_id"], s["version"], s["status"]) for s in seats_of(held["data"])] == [
            (1, 2, "HELD")]
        assert held["id"].endswith(f".{held['data']['seq']}")
    # The client hung up: the stream ends and is no longer counted.
    deadline = time.monotonic() + 5
    while serve.hub.clients() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert serve.hub.clients() == 0
    assert "seatflow_serve_clients 0.0" in httpx.get(f"{url}/metrics").text


def test_last_event_id_resumes_after_a_gap_and_a_stranger_gets_a_snapshot(
        server: tuple[str, ServeApp]) -> None:
    url, serve = server
    with httpx.Client(timeout=10) as http:
        with http.stream("GET", f"{url}/api/events/{EVENT}/stream") as response:
            [snapshot] = read_events(response.iter_lines(), 1)
        last = snapshot["id"]
        # Changes while the client is away.
        with serve.state.lock:
            for seat_id, status in ((1, "HELD"), (2, "SOLD"), (1, "SOLD")):
                version = serve.state.events[EVENT].seats[seat_id].version + 1
                serve.state.apply_seat(EVENT, seat_id, seat(seat_id, version, status))
        with http.stream("GET", f"{url}/api/events/{EVENT}/stream",
                         headers={"Last-Event-ID": last}) as response:
            # Changes ready together come as one frame, every seat change in order.
            [missed] = read_events(response.iter_lines(), 1)
        assert missed["event"] == "changes"
        assert [(s["seat_id"], s["status"]) for s in seats_of(missed["data"])] == [
            (1, "HELD"), (2, "SOLD"), (1, "SOLD")]
        assert int(missed["id"].rsplit(".", 1)[1]) == int(last.rsplit(".", 1)[1]) + 3
        with http.stream("GET", f"{url}/api/events/{EVENT}/stream",
                         headers={"Last-Event-ID": "another-process.3"}) as response:
            lines = response.iter_lines()
            [fresh] = read_events(lines, 1)
            assert fresh["event"] == "snapshot"
            # The snapshot made for the first client is shared; the changes since it follow.
            assert fresh["id"] == last
            shown = {s["seat_id"]: s["status"] for s in fresh["data"]["seats"]}
            [since] = read_events(lines, 1)
            for change in seats_of(since["data"]):
                shown[change["seat_id"]] = change["status"]
        assert (shown[1], shown[2]) == ("SOLD", "SOLD")


def test_a_client_too_far_behind_gets_a_fresh_snapshot(tmp_path: Path) -> None:
    state = ServeState(log_size=2)
    state.apply_seat(EVENT, 1, seat(1, 1))
    app = create_app(Settings(home=tmp_path), state=state, follow=False)
    serve: ServeApp = app.state.serve
    for version in range(2, 6):
        state.apply_seat(EVENT, 1, seat(1, version))
    # The client saw the first change only; the log keeps the last two.
    frames = []

    async def first_frame() -> None:
        stream = serve.stream(EVENT, 1)
        frames.append(await stream.__anext__())
        await stream.aclose()

    asyncio.run(first_frame())
    assert frames[0].startswith(f"id: {serve.epoch}.5\nevent: snapshot\n".encode())


def test_the_benchmarks_crowd_counts_every_change_and_its_probes_time_them(
        server: tuple[str, ServeApp]) -> None:
    from pipelines.serve.fans import _run, crowd

    url, serve = server

    def commit_changes(connected: int) -> None:
        assert connected == 5
        for version in range(2, 12):
            change(serve, 1, version, "HELD" if version % 2 else "OPEN")

    # On the loop the benchmark runs it on (uvloop when installed).
    report = _run(crowd(url, EVENT, clients=5, probes=2, hold_s=1.5,
                        on_connected=commit_changes))
    assert (report.connected, report.served, report.errors) == (5, 5, {})
    assert (report.caught_up, report.behind_max) == (5, 0)
    assert report.probe_seat_changes_min == 10
    assert report.latencies == 2 * 10 and report.p99_ms >= report.p50_ms
