"""An on-sale against the ticketing host: buyers hold, buy and release seats; holds expire.

Buyers are asyncio tasks sharing a small pool of connections. Every change is one SQL
statement (one round trip, autocommit, prepared), so a few connections reach thousands of
seat changes per second. With `batch` above 1 the host commits as a busy ticketing host does,
several buyers' statements in one transaction (group commit, `_GroupCommit`): the same
statements, far fewer commits and round trips. Which buyer does what is decided in
`pipelines.host.onsale`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pipelines.host import HostError, statements
from pipelines.host.onsale import (
    QUANTITY_WEIGHTS,
    OpenSeats,
    Outcome,
    OutcomeWeights,
    SeatPlace,
    checkout_delay,
    choose_outcome,
    choose_quantity,
    next_slot,
)
from pipelines.settings import Settings

__all__ = ["OnSaleStats", "onsale", "run_onsale"]

logger = logging.getLogger(__name__)

# How long a group commit waits for more buyers' statements after its first. The latency the
# benchmarks measure starts at the commit, so this shapes the load, not the figure.
GROUP_LINGER_S = 0.02

@dataclass(slots=True)
class OnSaleStats:
    """What an on-sale did; seat changes are rows of seat_inventory updated."""

    events: list[int] = field(default_factory=list)
    seconds: float = 0.0
    holds: int = 0
    sales: int = 0
    releases: int = 0
    expiries: int = 0
    # Buyers who checked out after their hold had expired.
    lapsed: int = 0
    # Hold attempts that lost a seat to another buyer (retried with other seats).
    conflicts: int = 0
    seats_held: int = 0
    seats_sold: int = 0
    seats_released: int = 0
    seats_expired: int = 0
    sold_out: list[int] = field(default_factory=list)
    # Transactions the buyers' statements took with group commit (`batch` > 1); else one each.
    transactions: int | None = None

    @property
    def seat_changes(self) -> int:
        return self.seats_held + self.seats_sold + self.seats_released + self.seats_expired

    @property
    def changes_per_second(self) -> float:
        return self.seat_changes / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class _Run:
    pool: AsyncConnectionPool[Any]
    maps: dict[int, OpenSeats]
    stats: OnSaleStats
    deadline: float
    rate: float
    hold_ttl: float
    outcomes: OutcomeWeights
    slot: float = 0.0
    dawdlers: set[asyncio.Task[None]] = field(default_factory=set)
    group: _GroupCommit | None = None

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    async def pace(self, seats: int) -> None:
        wait, self.slot = next_slot(self.slot, time.monotonic(), seats, self.rate)
        if wait > 0:
            await asyncio.sleep(wait)

    def charge(self, seats: int) -> None:
        """Count changes that could not wait (expiries) against the rate, slowing buyers."""
        _, self.slot = next_slot(self.slot, time.monotonic(), seats, self.rate)

    async def execute(self, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """A buyer's statement: alone in its own transaction, or in the next group commit."""
        if self.group is not None:
            return await self.group.execute(statement, params)
        async with self.pool.connection() as conn:
            return await (await conn.execute(statement, params)).fetchall()


class _GroupCommit:
    """Buyers' statements taken together: up to `size` of them, or as many as arrive within
    `linger` seconds of the first, run in one transaction on one connection in pipeline mode.
    Each statement keeps its own all-or-nothing meaning (a hold that finds a seat taken,
    even by an earlier statement of its own group, holds nothing), so the buyers' logic is
    the same; the host pays one commit and one round trip per group, not per statement."""

    def __init__(self, pool: AsyncConnectionPool[Any], size: int, linger: float) -> None:
        self.pool = pool
        self.size = size
        self.linger = linger
        self.queue: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[Any]]] = (
            asyncio.Queue())
        self.groups = 0

    async def execute(self, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        done: asyncio.Future[list[tuple[Any, ...]]] = asyncio.get_running_loop().create_future()
        await self.queue.put((statement, params, done))
        return await done

    async def _take(self) -> list[tuple[str, dict[str, Any], asyncio.Future[Any]]]:
        group = [await self.queue.get()]
        deadline = time.monotonic() + self.linger
        while len(group) < self.size:
            if self.queue.empty():
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                try:
                    group.append(await asyncio.wait_for(self.queue.get(), wait))
                except TimeoutError:
                    break
            else:
                group.append(self.queue.get_nowait())
        return group

    async def run(self) -> None:
        """One committer; run one per connection. Cancelled when the on-sale ends."""
        while True:
            group = await self._take()
            try:
                async with self.pool.connection() as conn, conn.pipeline():
                    async with conn.transaction():
                        cursors = [await conn.execute(s, p) for s, p, _ in group]
                    results = [await cur.fetchall() for cur in cursors]
            except psycopg.Error as e:  # the host went away: every buyer of the group hears it
                for *_, done in group:
                    if not done.done():
                        done.set_exception(e)
                continue
            self.groups += 1
            for (*_, done), rows in zip(group, results, strict=True):
                if not done.done():
                    done.set_result(rows)


def run_onsale(
    settings: Settings,
    *,
    rate: float = 0.0,
    duration: float = 10.0,
    buyers: int = 400,
    events: Sequence[int] | None = None,
    hold_ttl: float = 15.0,
    seed: int | None = None,
    connections: int = 4,
    outcomes: OutcomeWeights | None = None,
    batch: int = 1,
) -> OnSaleStats:
    """Run an on-sale for `duration` seconds and return what happened."""
    return asyncio.run(
        onsale(
            settings,
            rate=rate,
            duration=duration,
            buyers=buyers,
            events=events,
            hold_ttl=hold_ttl,
            seed=seed,
            connections=connections,
            outcomes=outcomes,
            batch=batch,
        )
    )


async def onsale(
    settings: Settings,
    *,
    rate: float = 0.0,
    duration: float = 10.0,
    buyers: int = 400,
    events: Sequence[int] | None = None,
    hold_ttl: float = 15.0,
    seed: int | None = None,
    connections: int = 4,
    outcomes: OutcomeWeights | None = None,
    batch: int = 1,
) -> OnSaleStats:
    """The on-sale, for callers already in an event loop. `batch` above 1 commits up to that
    many buyers' statements in one transaction (group commit)."""
    if duration <= 0 or buyers < 1 or connections < 1 or hold_ttl <= 0 or rate < 0 or batch < 1:
        raise HostError(
            "duration, buyers, connections, batch and hold TTL must be > 0, rate >= 0")
    # Simulation, not security: a seeded generator makes a run repeatable.
    master = random.Random(seed)  # noqa: S311
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        settings.pg_dsn(),
        # One more connection for the sweeper, so expiries never queue behind buyers.
        min_size=connections + 1,
        max_size=connections + 1,
        # prepare_threshold=0: every statement is prepared on first use.
        kwargs={"autocommit": True, "prepare_threshold": 0, "connect_timeout": 10},
        timeout=30,
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=30)
    except Exception as e:  # pool.open raises PoolTimeout, with psycopg's reason logged
        raise HostError(f"cannot connect to the ticketing host: {e}") from e
    try:
        async with pool:
            maps = await _load_seat_maps(pool, events)
            stats = OnSaleStats(events=sorted(maps))
            run = _Run(
                pool=pool,
                maps=maps,
                stats=stats,
                deadline=time.monotonic() + duration,
                rate=rate,
                hold_ttl=hold_ttl,
                outcomes=outcomes or OutcomeWeights(),
                group=_GroupCommit(pool, batch, GROUP_LINGER_S) if batch > 1 else None,
            )
            started = time.monotonic()
            stop = asyncio.Event()
            sweeper = asyncio.create_task(_sweep(run, stop))
            group = run.group
            committers = ([asyncio.create_task(group.run()) for _ in range(connections)]
                          if group is not None else [])
            tasks = [
                asyncio.create_task(_buyer(run, random.Random(master.getrandbits(64)), n))  # noqa: S311
                for n in range(buyers)
            ]
            try:
                await asyncio.gather(*tasks)
                await asyncio.gather(*run.dawdlers)
            finally:
                stop.set()
                await sweeper
                for committer in committers:
                    committer.cancel()
                await asyncio.gather(*committers, return_exceptions=True)
            stats.seconds = time.monotonic() - started
            stats.transactions = group.groups if group is not None else None
            stats.sold_out = await _mark_sold_out(pool, stats.events)
    except psycopg.Error as e:
        raise HostError(f"the on-sale failed: {e}") from e
    return stats


async def _load_seat_maps(
    pool: AsyncConnectionPool[Any], events: Sequence[int] | None
) -> dict[int, OpenSeats]:
    async with pool.connection() as conn:
        if events is None:
            rows = await (
                await conn.execute(
                    "SELECT event_id FROM ticketing.events"
                    " WHERE status = 'on_sale' AND on_sale_at <= now() ORDER BY event_id"
                )
            ).fetchall()
            chosen = [int(r[0]) for r in rows]
        else:
            chosen = list(events)
        if not chosen:
            raise HostError("no event is on sale: run `seatflow seed` first, or pass --event")
        maps: dict[int, OpenSeats] = {}
        for event_id in chosen:
            cur = await conn.execute(
                "SELECT si.seat_id, s.section_id, s.row_index, s.seat_number,"
                " si.status = 'open', sec.price_zone"
                " FROM ticketing.seat_inventory si"
                " JOIN ticketing.seats s ON s.seat_id = si.seat_id"
                " JOIN ticketing.sections sec ON sec.section_id = s.section_id"
                " WHERE si.event_id = %s",
                (event_id,),
            )
            rows = await cur.fetchall()
            if not rows:
                raise HostError(f"event {event_id} has no seat inventory")
            zones = {int(r[1]): str(r[5]) for r in rows}
            maps[event_id] = OpenSeats.from_rows(
                (SeatPlace(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows),
                (int(r[0]) for r in rows if r[4]),
                zones,
            )
    return maps


async def _buyer(run: _Run, rng: random.Random, number: int) -> None:
    """One buyer after another at the same box-office window, until time is up."""
    stats = run.stats
    customer = 0
    while run.time_left() > 0:
        open_events = [e for e, m in run.maps.items() if len(m) > 0]
        if not open_events:
            return  # every event sold out (or held)
        event_id = rng.choice(open_events)
        seat_map = run.maps[event_id]
        customer += 1
        buyer_id = number * 1_000_000 + customer
        quantity = choose_quantity(rng)
        hold_id: int | None = None
        seat_ids: tuple[int, ...] = ()
        for _ in range(3):
            choice = seat_map.pick(rng, quantity)
            if choice is None or run.time_left() <= 0:
                break
            seat_ids = choice.seat_ids
            await run.pace(len(seat_ids))
            params = {
                "event_id": event_id,
                "seat_ids": list(seat_ids),
                "buyer_id": buyer_id,
                "quantity": len(seat_ids),
                "hold_ttl": run.hold_ttl,
            }
            rows = await run.execute(statements.HOLD, params)
            if rows:
                hold_id = int(rows[0][0])
                seat_map.take(seat_ids)
                stats.holds += 1
                stats.seats_held += len(rows)
                break
            # Someone else got there first: drop what they took from our seat map.
            stats.conflicts += 1
            taken = await run.execute(statements.STILL_TAKEN, params)
            seat_map.take(int(r[0]) for r in taken)
        if hold_id is None:
            continue
        outcome = choose_outcome(rng, run.outcomes)
        if outcome is Outcome.ABANDON:
            continue
        delay = checkout_delay(rng, outcome, run.hold_ttl)
        checkout = _checkout(run, seat_map, event_id, hold_id, seat_ids, outcome, delay)
        if delay < run.hold_ttl:
            await checkout
        else:
            # A dawdler comes back after the hold lapsed; the window serves others meanwhile.
            task = asyncio.create_task(checkout)
            run.dawdlers.add(task)
            task.add_done_callback(run.dawdlers.discard)


async def _checkout(
    run: _Run,
    seat_map: OpenSeats,
    event_id: int,
    hold_id: int,
    seat_ids: tuple[int, ...],
    outcome: Outcome,
    delay: float,
) -> None:
    """Buy or release held seats after thinking for `delay` seconds."""
    await asyncio.sleep(min(delay, max(run.time_left(), 0)))
    if run.time_left() <= 0:
        return  # the hold stays active; a later sweep expires it
    await run.pace(len(seat_ids))
    params = {"hold_id": hold_id, "event_id": event_id, "seat_ids": list(seat_ids)}
    statement = statements.BUY if outcome is Outcome.BUY else statements.RELEASE
    changed = await run.execute(statement, params)
    stats = run.stats
    if not changed:
        stats.lapsed += 1
    elif outcome is Outcome.BUY:
        stats.sales += 1
        stats.seats_sold += len(changed)
    else:
        stats.releases += 1
        stats.seats_released += len(changed)
        seat_map.give_back(int(r[0]) for r in changed)


async def _sweep(run: _Run, stop: asyncio.Event) -> None:
    """Expire due holds every so often, and once more at the end."""
    interval = min(0.5, run.hold_ttl / 4)
    # With a rate, a backlog of due holds (left by an earlier run, say) expires in chunks at
    # that rate rather than in one burst. A chunk counts holds, of up to max(quantities) seats.
    seats_per_hold = max(QUANTITY_WEIGHTS)
    chunk = 2000 if run.rate <= 0 else max(1, min(2000, int(run.rate * interval / seats_per_hold)))
    while True:
        stopping = stop.is_set()
        async with run.pool.connection() as conn:
            while True:
                rows = await (await conn.execute(statements.EXPIRE, {"limit": chunk})).fetchall()
                for event_id, seat_id, _hold in rows:
                    seat_map = run.maps.get(int(event_id))
                    if seat_map is not None:
                        seat_map.give_back((int(seat_id),))
                holds = len({r[2] for r in rows})
                run.stats.seats_expired += len(rows)
                run.charge(len(rows))
                run.stats.expiries += holds
                if holds < chunk:  # the limit counts holds, and rows are seats
                    break
                await run.pace(0)
        if stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def _mark_sold_out(pool: AsyncConnectionPool[Any], events: Sequence[int]) -> list[int]:
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "UPDATE ticketing.events e SET status = 'sold_out'"
                " WHERE e.event_id = ANY(%s::bigint[]) AND e.status = 'on_sale'"
                " AND NOT EXISTS (SELECT FROM ticketing.seat_inventory si"
                "   WHERE si.event_id = e.event_id AND si.status <> 'sold')"
                " RETURNING e.event_id",
                (list(events),),
            )
        ).fetchall()
    return sorted(int(r[0]) for r in rows)
