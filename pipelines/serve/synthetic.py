"""serve fed by a synthetic on-sale instead of the availability topics, for `seatflow bench
fans --synthetic`: the fan-out alone (from the change entering serve's state to a client),
without the pipeline, its latency and its share of the cores.

    python -m pipelines.serve.synthetic --port 18091 --rate 2000 --seats 50000 \
        --clients 1000 --duration 30

One event (id 1) of `--seats` seats in sections of 500. Once `--clients` streams are connected,
a feeder thread changes random seats (open, held, sold or open again) at `--rate` a second in
ticks of 10 ms for `--duration` seconds, each stamped with the time it entered the state as its
commit time, and wakes the streams as the follower does.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from typing import Any

from pipelines.serve.app import ServeApp, create_app
from pipelines.serve.state import ServeState
from pipelines.settings import Settings

__all__ = ["EVENT_ID", "feed", "main", "venue"]

EVENT_ID = 1
SECTION_SEATS = 500
TICK_S = 0.01
_NEXT = {"OPEN": "HELD", "HELD": "SOLD", "SOLD": "OPEN"}


def _seat(seat_id: int, status: str, version: int) -> dict[str, Any]:
    section = seat_id // SECTION_SEATS
    return {"seat_id": seat_id, "status": status, "section_code": str(100 + section),
            "row_label": str((seat_id % SECTION_SEATS) // 25), "seat_number": seat_id % 25,
            "price_level_id": 1 + section % 4, "price_level_code": f"P{1 + section % 4}",
            "price": "50.00", "source_version": version, "source_lsn": None,
            "source_committed_at": int(time.time() * 1000)}


def venue(state: ServeState, seats: int) -> None:
    """The event's seats, all open at version 1."""
    with state.lock:
        for seat_id in range(seats):
            state.apply_seat(EVENT_ID, seat_id, _seat(seat_id, "OPEN", 1))


def feed(serve: ServeApp, seats: int, rate: float, stop: threading.Event, *,
         clients: int = 0, duration: float = float("inf"), seed: int = 1) -> None:
    """Once `clients` streams are connected, change random seats at `rate` a second for
    `duration` seconds (or until `stop`)."""
    rng = random.Random(seed)  # noqa: S311
    while serve.hub.clients() < clients and not stop.wait(0.1):
        pass
    state, started, done = serve.state, time.monotonic(), 0
    while not stop.wait(TICK_S) and time.monotonic() - started < duration:
        due = int((time.monotonic() - started) * rate) - done
        if due <= 0:
            continue
        with state.lock:
            for _ in range(due):
                seat_id = rng.randrange(seats)
                held = state.events[EVENT_ID].seats[seat_id]
                state.apply_seat(EVENT_ID, seat_id,
                                 _seat(seat_id, _NEXT[held.status], held.version + 1))
        done += due
        serve.notify({EVENT_ID})


def main(argv: list[str] | None = None) -> None:
    from pipelines.serve import run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seats", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=0, help="Streams to wait for.")
    parser.add_argument("--duration", type=float, default=float("inf"))
    args = parser.parse_args(argv)
    state = ServeState()
    venue(state, args.seats)
    app = create_app(Settings(), state=state, follow=False)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(app.state.serve, args.seats, args.rate, stop),
                              kwargs={"clients": args.clients, "duration": args.duration},
                              name="synthetic-feed", daemon=True)
    feeder.start()
    try:
        run(host=args.host, port=args.port, app=app)
    finally:
        stop.set()


if __name__ == "__main__":
    main()
