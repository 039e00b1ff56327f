"""A crowd of fans following one event's stream: N concurrent SSE clients in one asyncio
process, for `seatflow bench fans` (which runs it in a process of its own, at a lower
priority, so that it measures serve rather than competes with it).

Every client reads its stream whole and keeps the id of the last frame in it; a few probes also
parse each frame and time every seat change from its commit in the ticketing host
(source_committed_at) to its arrival here. All clients of the crowd get the same frames in the
same order from the same server, so the probes' delays are the crowd's, and a client whose last
id at the end is the newest kept up; parsing every frame in every client would make this
process, not serve, the bottleneck.

    python -m pipelines.serve.fans --url http://127.0.0.1:18090 --event 1 --clients 1000
prints `connected N` once the clients are in, stays `--hold` seconds, then prints its report
as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from pipelines.serve.wire import seats_of
from pipelines.stats import percentile

__all__ = ["CrowdReport", "crowd", "main"]

_ID_LINE = b"id: "
_NEWLINE = ord("\n")
_DATA = b"\ndata: "
_FRAME_END = b"\n\n"


@dataclass
class Client:
    probe: bool
    last_seq: int = 0  # the id of the newest frame read
    seat_changes: int = 0  # probes only
    latencies_ms: list[float] = field(default_factory=list)
    error: str | None = None
    connected: bool = False
    # Probes: the part of a frame not complete yet. Others: the tail an id line may span.
    buffer: bytes = b""


@dataclass
class CrowdReport:
    clients: int
    connected: int
    # Clients still connected, without an error, when the hold ended.
    served: int
    errors: dict[str, int]
    # Clients that had read the newest frame any client read when the hold ended.
    caught_up: int
    # How far the furthest-behind client was from it then, in changes.
    behind_max: int
    probes: int
    probe_seat_changes_min: int
    latencies: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class _Stream(asyncio.Protocol):
    """One client's connection. A protocol rather than a stream reader: its data arrives in a
    callback, with no task to wake per read, so the crowd spends its CPU on reading, not on
    switching between a thousand tasks."""

    def __init__(self, client: Client, request: bytes) -> None:
        self.client, self.request = client, request
        self.head = b""
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have write().
        cast(asyncio.WriteTransport, transport).write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.answered.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4:]
            if not head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
                self.answered.set_exception(ConnectionError(
                    head.split(b"\r\n", 1)[0].decode(errors="replace")))
                return
            self.answered.set_result(None)
            if not data:
                return
        _read(self.client, data, time.time() * 1000)

    def connection_lost(self, exc: Exception | None) -> None:
        error = exc or ConnectionError("closed by the server")
        for waiting in (self.answered, self.closed):
            if not waiting.done():
                waiting.set_exception(error)


async def _follow(client: Client, host: str, port: int, path: str, last_event_id: str | None,
                  stop: asyncio.Event) -> None:
    transport = None
    # HTTP/1.0: the body comes unchunked, ended by the server closing (never, here).
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    request = (f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
               f"{resume}\r\n").encode()
    try:
        transport, stream = await asyncio.wait_for(asyncio.get_running_loop().create_connection(
            lambda: _Stream(client, request), host, port), 30)
        await asyncio.wait_for(stream.answered, 30)
        client.connected = True
        stopped = asyncio.ensure_future(stop.wait())
        waiting: list[asyncio.Future[Any]] = [stopped, stream.closed]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if stream.closed.done():
            stream.closed.result()  # raises what closed it
    except (OSError, EOFError, TimeoutError, ConnectionError) as e:
        if not stop.is_set():
            client.error = type(e).__name__ if not str(e) else f"{type(e).__name__}: {e}"[:80]
    finally:
        if transport is not None:
            transport.close()


def _read(client: Client, data: bytes, now_ms: float) -> None:
    joined = client.buffer + data
    seq = _newest_seq(joined)
    if seq is not None:
        client.last_seq = seq
    if client.probe:
        _probe(client, joined, now_ms)
    else:
        client.buffer = joined[-64:]  # covers an id line split between reads


def _newest_seq(data: bytes) -> int | None:
    """The change number of the newest complete id line (`id: <epoch>.<number>`) in data,
    searched from its end: a regular expression over every byte read was most of the crowd's
    CPU. Only id lines hold "id: " (the JSON of data lines has no space after a colon, pings
    are comments); it starts data or a line."""
    start = data.rfind(_ID_LINE)
    while start >= 0:
        end = data.find(b"\n", start)
        if end >= 0 and (start == 0 or data[start - 1] == _NEWLINE):
            return int(data[start:end].rpartition(b".")[2])
        start = data.rfind(_ID_LINE, 0, start)
    return None


def _probe(client: Client, joined: bytes, now_ms: float) -> None:
    frames = joined.split(_FRAME_END)
    client.buffer = frames.pop()
    for frame in frames:
        if b"\nevent: changes\n" not in frame:
            continue
        changes = json.loads(frame[frame.index(_DATA) + len(_DATA):])
        for seat in seats_of(changes):
            client.seat_changes += 1
            committed = seat.get("source_committed_at")
            if committed is not None:
                client.latencies_ms.append(now_ms - committed)


async def crowd(url: str, event_id: int, *, clients: int, probes: int, hold_s: float,
                connect_rate: float = 500.0, last_event_id: str | None = None,
                on_connected: Callable[[int], None] | None = None) -> CrowdReport:
    """Connect the clients (at most connect_rate a second), hold them hold_s, report."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"/api/events/{event_id}/stream"
    stop = asyncio.Event()
    crowd_ = [Client(probe=i < probes) for i in range(clients)]
    tasks = []
    for i, client in enumerate(crowd_):
        tasks.append(asyncio.create_task(_follow(client, host, port, path, last_event_id, stop)))
        if (i + 1) % 50 == 0:
            await asyncio.sleep(50 / connect_rate)
    deadline = time.monotonic() + 60
    while (sum(c.connected or c.error is not None for c in crowd_) < clients
           and time.monotonic() < deadline):
        await asyncio.sleep(0.2)
    if on_connected is not None:
        on_connected(sum(c.connected for c in crowd_))
    await asyncio.sleep(hold_s)
    served = sum(c.connected and c.error is None for c in crowd_)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    errors: dict[str, int] = {}
    for c in crowd_:
        if c.error is not None:
            errors[c.error] = errors.get(c.error, 0) + 1
    seqs = [c.last_seq for c in crowd_ if c.connected] or [0]
    latencies = sorted(x for c in crowd_ if c.probe for x in c.latencies_ms)
    return CrowdReport(clients, sum(c.connected for c in crowd_), served, errors,
                       seqs.count(max(seqs)), max(seqs) - min(seqs), min(probes, clients),
                       min((c.seat_changes for c in crowd_ if c.probe), default=0), len(latencies),
                       percentile(latencies, 0.50), percentile(latencies, 0.95),
                       percentile(latencies, 0.99), round(latencies[-1], 1) if latencies else 0.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--event", type=int, required=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--last-event-id", default=None)
    args = parser.parse_args(argv)
    # A socket per client: lift the open-files limit to what the system allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.clients + 256)), hard))

    def connected(n: int) -> None:
        print(f"connected {n}", flush=True)

    report = _run(crowd(args.url, args.event, clients=args.clients, probes=args.probes,
                        hold_s=args.hold, last_event_id=args.last_event_id,
                        on_connected=connected))
    print(json.dumps(asdict(report)), flush=True)


def _run(main: Coroutine[Any, Any, CrowdReport]) -> CrowdReport:
    try:
        import uvloop  # uvicorn's loop, when installed: the crowd's own overhead is smaller
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


if __name__ == "__main__":
    main(sys.argv[1:])
