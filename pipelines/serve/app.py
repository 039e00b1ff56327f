"""The web app of `seatflow serve`: the availability API, its live stream and the seat map page."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.serve.follower import Follower, quantile
from pipelines.serve.state import ServeState
from pipelines.serve.wire import format_changes
from pipelines.settings import Settings

__all__ = ["STATIC_DIR", "Hub", "ServeApp", "create_app", "parse_last_event_id"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# An SSE comment every 15 s keeps idle connections open through proxies and load balancers.
PING_S = 15
READY_POLL_S = 0.2
EventId = Annotated[int, PathParam(ge=0, le=2**63 - 1, description="Event id (events.event_id).")]


class Hub:
    """The streams waiting for changes of each event, woken from the event loop's thread."""

    def __init__(self) -> None:
        self._waiting: dict[int, set[asyncio.Event]] = {}

    def subscribe(self, event_id: int) -> asyncio.Event:
        waker = asyncio.Event()
        self._waiting.setdefault(event_id, set()).add(waker)
        return waker

    def unsubscribe(self, event_id: int, waker: asyncio.Event) -> None:
        waiting = self._waiting.get(event_id)
        if waiting is not None:
            waiting.discard(waker)
            if not waiting:
                del self._waiting[event_id]

    def notify(self, event_ids: Iterable[int]) -> None:
        for event_id in event_ids:
            for waker in self._waiting.get(event_id, ()):
                waker.set()

    def clients(self) -> int:
        return sum(len(w) for w in self._waiting.values())


def parse_last_event_id(value: str | None, epoch: str) -> int | None:
    """The change id to resume after, from a Last-Event-ID this process gave out ("epoch.id");
    None for anything else: another process's ids (a restart, another instance behind the load
    balancer) say nothing about this one's changes, so that client gets a snapshot."""
    if not value:
        return None
    given_epoch, _, seq = value.strip().partition(".")
    if given_epoch != epoch or not seq.isdigit():
        return None
    return int(seq)


def _frame(kind: str, event_id: str, data: Any) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass
class ServeApp:
    """What the handlers share: the state, the streams waiting on it, the follower, metrics."""

    state: ServeState
    hub: Hub = field(default_factory=Hub)
    follower: Follower | None = None
    # Changes this process numbers restart at 1: the epoch tells its ids from another's.
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    ready_override: bool = False
    loop: asyncio.AbstractEventLoop | None = None  # the server's, set when the app starts
    # Per event: the newest change id and the chunk for each position streams wait at.
    _chunks: dict[int, tuple[int, dict[int, tuple[bytes, int, int]]]] = field(
        default_factory=dict)
    _snapshots: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    _snapshot_locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    _pending: set[int] = field(default_factory=set)
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)
    _wake_scheduled: bool = False

    def __post_init__(self) -> None:
        self.clients = Gauge("seatflow_serve_clients", "Connected stream (SSE) clients.",
                             registry=self.registry)
        self.fanned_out = Counter("seatflow_serve_changes_fanned_out",
                                  "Changes sent to stream clients (one per client).",
                                  registry=self.registry)
        self.chunks_sent = Counter("seatflow_serve_chunks_sent",
                                   "Sends of changes to stream clients (each one or more changes).",
                                   registry=self.registry)
        self.snapshots = Counter("seatflow_serve_snapshots", "Snapshots sent to stream clients.",
                                 registry=self.registry)
        self.registry.register(_FollowerCollector(self))

    @property
    def ready(self) -> bool:
        if self.follower is None:
            return self.ready_override
        return self.follower.ready.is_set() and self.follower.alive

    def notify(self, event_ids: Iterable[int]) -> None:
        """Wake the streams of these events; from any thread (the follower's). While a wake is
        pending in the loop, further events join it: a loop that is behind wakes each stream
        once for all of them, not once per batch the follower read meanwhile."""
        if self.loop is None:
            return
        with self._pending_lock:
            self._pending.update(event_ids)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._pending_lock:
            event_ids, self._pending = self._pending, set()
            self._wake_scheduled = False
        self.hub.notify(event_ids)

    async def stream(self, event_id: int, last_id: int | None) -> AsyncIterator[bytes]:
        """An event's changes as SSE frames: after `last_id` if they are all still kept, else a
        snapshot first; then live. Frames that are ready together go out as one chunk (bytes:
        sse-starlette sends them as they are)."""
        waker = self.hub.subscribe(event_id)  # before reading: no change slips in between
        self.clients.inc()
        try:
            # Still reading the topics from their start: a snapshot now would be partial and
            # followed by the rest of the topics as changes. The connection waits (pinged).
            while not self.ready:
                await asyncio.sleep(READY_POLL_S)
            while True:
                waker.clear()
                batch = None if last_id is None else self._changes_after(event_id, last_id)
                if batch is None:
                    snapshot = await self._snapshot(event_id)
                    if snapshot is None:
                        return  # the event is gone (only a reset empties the topics)
                    last_id, frame = snapshot
                    self.snapshots.inc()
                    yield frame
                    continue  # the changes since the snapshot, if any, at once
                if batch[1]:
                    chunk, count, last_id = batch
                    self.fanned_out.inc(count)
                    self.chunks_sent.inc()
                    yield chunk
                    continue
                await waker.wait()
        finally:
            self.hub.unsubscribe(event_id, waker)
            self.clients.dec()

    def _changes_after(self, event_id: int, last_id: int) -> tuple[bytes, int, int] | None:
        """The frames of the event's changes after last_id, their count and the newest id;
        None when they are no longer all kept. The streams of an event mostly wait at the same
        change: the chunk is made once and sent to all of them."""
        newest = self.state.newest_id(event_id)
        if newest == last_id:
            return b"", 0, last_id
        cached = self._chunks.get(event_id)
        if cached is not None and cached[0] == newest and last_id in cached[1]:
            return cached[1][last_id]
        with self.state.lock:
            changes = self.state.changes_since(event_id, last_id)
        if changes is None:
            return None
        if not changes:
            return b"", 0, last_id
        batch = (format_changes(changes, self.epoch), len(changes), changes[-1].id)
        if cached is None or cached[0] != batch[2]:
            cached = self._chunks[event_id] = (batch[2], {})
        cached[1][last_id] = batch
        return batch

    async def _snapshot(self, event_id: int) -> tuple[int, bytes] | None:
        """The event's snapshot frame and the id of its newest change. Made once and kept for
        as long as the changes since it are kept (a client gets it, then those changes): a
        crowd that connects at once costs one snapshot, not one each."""
        lock = self._snapshot_locks.setdefault(event_id, asyncio.Lock())
        async with lock:
            cached = self._snapshots.get(event_id)
            if cached is not None:
                with self.state.lock:
                    if self.state.changes_since(event_id, cached[0]) is not None:
                        return cached
            with self.state.lock:
                snapshot = self.state.snapshot(event_id)
            if snapshot is None:
                return None
            seq = snapshot["seq"]
            # Megabytes of JSON for a stadium: encoded off the event loop, which serves the
            # other streams meanwhile.
            frame = await asyncio.to_thread(
                lambda: _frame("snapshot", f"{self.epoch}.{seq}", snapshot).encode())
            self._snapshots[event_id] = (seq, frame)
            return seq, frame


class _FollowerCollector(Collector):
    """Metrics read from the follower at scrape time: staleness quantiles, lag, readiness."""

    def __init__(self, serve: ServeApp) -> None:
        self.serve = serve

    def collect(self) -> Iterable[GaugeMetricFamily]:
        follower = self.serve.follower
        ready = GaugeMetricFamily("seatflow_serve_ready", "1 once the topics are read to the end "
                                  "they had at start.")
        ready.add_metric([], 1.0 if self.serve.ready else 0.0)
        yield ready
        if follower is None:
            return
        staleness = GaugeMetricFamily(
            "seatflow_serve_staleness_seconds",
            "Time from a seat change's commit in the ticketing host to its arrival here, over "
            "the last changes read.", labels=["quantile"])
        samples = list(follower.stats.staleness)
        for q in (0.5, 0.99):
            value = quantile(samples, q)
            if value is not None:
                staleness.add_metric([str(q)], value)
        yield staleness
        lag = GaugeMetricFamily("seatflow_serve_consumer_lag",
                                "Committed records of the availability topics not read yet.",
                                labels=["topic"])
        by_topic: dict[str, int] = {}
        for (topic, _), behind in list(follower.stats.lag.items()):
            by_topic[topic] = by_topic.get(topic, 0) + behind
        for topic, behind in sorted(by_topic.items()):
            lag.add_metric([topic], behind)
        yield lag
        records = GaugeMetricFamily("seatflow_serve_records_read",
                                    "Records of the availability topics read since start.")
        records.add_metric([], follower.stats.records)
        yield records


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def create_app(settings: Settings, *, state: ServeState | None = None,
               follow: bool = True) -> FastAPI:
    """The app over `state`; with `follow`, a Follower fills it from the topics while the app
    runs (started and stopped by the app's lifespan). Without, the state is served as it is."""
    serve = ServeApp(state or ServeState(), ready_override=not follow)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serve.loop = asyncio.get_running_loop()
        if follow:
            serve.follower = Follower(settings, serve.state, on_changes=serve.notify)
            serve.follower.start()
        try:
            yield
        finally:
            if serve.follower is not None:
                serve.follower.stop()

    app = FastAPI(title="seatflow serve", lifespan=lifespan, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.serve = serve

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return _error(400, "bad_request", "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):
            return JSONResponse(exc.detail, status_code=exc.status_code)
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "http_error",
                      str(exc.detail))

    def unknown_event(event_id: int) -> HTTPException:
        return HTTPException(404, {"error": "unknown_event",
                                            "message": f"event {event_id} is unknown"})

    @app.get("/api/events")
    def events() -> dict[str, Any]:
        """Every event with its totals."""
        with serve.state.lock:
            listed = []
            for event_id in sorted(serve.state.events):
                view = serve.state.events[event_id]
                listed.append({"event_id": event_id, "seats": len(view.seats),
                               "totals": view.totals.json() if view.totals else None,
                               "updated_at": view.newest_committed_at})
        return {"events": listed}

    @app.get("/api/events/{event_id}")
    def event(event_id: EventId) -> dict[str, Any]:
        """An event's totals and sections (open, held, sold, lowest open price)."""
        with serve.state.lock:
            if event_id not in serve.state.events:
                raise unknown_event(event_id)
            return serve.state.summary(event_id)

    @app.get("/api/events/{event_id}/seats")
    def seats(event_id: EventId,
              section: Annotated[str | None, Query(min_length=1, max_length=32,
                                                   pattern=r"^[\w .-]+$",
                                                   description="Only this section's seats.")] = None,
              ) -> dict[str, Any]:
        """Every seat of the event (or of one section): status and source version."""
        with serve.state.lock:
            found = serve.state.seats(event_id, section)
            if found is None:
                raise unknown_event(event_id)
            if section is not None and not found:
                raise HTTPException(404, {
                    "error": "unknown_section",
                    "message": f"event {event_id} has no seat in section {section!r}"})
            return {"event_id": event_id, "section": section, "seq": serve.state.last_id,
                    "seats": [s.json() for s in found]}

    @app.get("/api/events/{event_id}/stream")
    async def stream(event_id: EventId, request: Request,
                     last_event_id: Annotated[str | None, Header(max_length=64)] = None,
                     ) -> EventSourceResponse:
        """Server-sent events of the event: `snapshot` first (or the changes after
        Last-Event-ID), then `changes`: seats with their versions, section counts, totals."""
        with serve.state.lock:
            known = event_id in serve.state.events
        if not known:
            raise unknown_event(event_id)
        last_id = parse_last_event_id(last_event_id, serve.epoch)
        return EventSourceResponse(serve.stream(event_id, last_id),
                                   ping=PING_S, headers={"Cache-Control": "no-store"})

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """200 once the topics are read to where they ended at start; 503 until then."""
        follower = serve.follower
        body: dict[str, Any] = {"ready": serve.ready, "events": len(serve.state.events)}
        if follower is not None:
            body |= {"records": follower.stats.records, "lag": follower.lag(),
                     "error": follower.stats.error}
        return JSONResponse(body, status_code=200 if serve.ready else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(serve.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    @app.get("/events/{event_id}", include_in_schema=False)
    def page(event_id: int | None = None) -> FileResponse:
        # One page; its script reads the event from the address (or shows the list).
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
