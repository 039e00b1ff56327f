"""Seed the ticketing host with a stadium, its seats and events on sale, idempotently."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from pipelines.host import HostError
from pipelines.host.venue import (
    PRICE_ZONES,
    StadiumPlan,
    event_plans,
    price_levels_for_event,
    seat_plans,
    stadium_plan,
)
from pipelines.settings import Settings

__all__ = ["DEFAULT_SEATS", "SeedResult", "seed_host"]

logger = logging.getLogger(__name__)

DEFAULT_SEATS = 50_000


@dataclass(frozen=True, slots=True)
class SeedResult:
    venue_id: int
    venue_created: bool
    sections: int
    seats: int
    events_created: list[int]
    events_existing: list[int]
    inventory_rows_added: int
    seconds: float


_TABLES = "venues, events, sections, price_levels, seats, seat_inventory, holds, orders"


def _empty_tables(conn: psycopg.Connection[Any]) -> None:
    # seat_inventory by DELETE: Debezium captures deletes (it skips truncates), so the processor
    # drops the old seats before the new rows, whose versions start again at 1, arrive. The
    # reference tables' new rows replace the old ones by id downstream.
    conn.execute("DELETE FROM ticketing.seat_inventory")
    tables = ", ".join(f"ticketing.{t}" for t in _TABLES.split(", "))
    conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def seed_host(
    settings: Settings,
    *,
    events: int = 3,
    seats: int = DEFAULT_SEATS,
    reset: bool = False,
    now: datetime | None = None,
) -> SeedResult:
    """Create the stadium (if missing), `events` events on sale and their open inventory."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    plan = stadium_plan(seats)
    try:
        with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn, conn.transaction():
            if reset:
                _empty_tables(conn)
            venue_id, venue_created = _ensure_venue(conn, plan)
            section_count, seat_count = conn.execute(
                "SELECT (SELECT count(*) FROM ticketing.sections WHERE venue_id = %(v)s),"
                " (SELECT count(*) FROM ticketing.seats WHERE venue_id = %(v)s)",
                {"v": venue_id},
            ).fetchone() or (0, 0)
            created, existing, added = _ensure_events(conn, venue_id, events, now)
    except psycopg.Error as e:
        raise HostError(f"seeding the ticketing host failed (rolled back): {e}") from e
    if reset or created or venue_created:
        # Vacuumed and analysed now, not by autovacuum in the middle of the on-sale that follows:
        # a reset leaves a dead row per seat, and the simulator's first queries need statistics
        # for index plans. (VACUUM runs outside a transaction.)
        try:
            with psycopg.connect(settings.pg_dsn(), connect_timeout=10, autocommit=True) as conn:
                for table in ("seats", "seat_inventory", "holds", "orders"):
                    conn.execute(f"VACUUM (ANALYZE) ticketing.{table}")
        except psycopg.Error as e:
            raise HostError(f"the ticketing host is seeded, but vacuuming it failed: {e}") from e
    return SeedResult(
        venue_id=venue_id,
        venue_created=venue_created,
        sections=section_count,
        seats=seat_count,
        events_created=created,
        events_existing=existing,
        inventory_rows_added=added,
        seconds=time.perf_counter() - started,
    )


def _ensure_venue(conn: psycopg.Connection[tuple[Any, ...]], plan: StadiumPlan) -> (
    tuple[int, bool]
):
    row = conn.execute(
        "SELECT venue_id FROM ticketing.venues WHERE name = %s AND city = %s",
        (plan.name, plan.city),
    ).fetchone()
    if row is not None:
        # The layout is fixed once seats exist; --reset builds a stadium of another size.
        return int(row[0]), False
    venue_row = conn.execute(
        "INSERT INTO ticketing.venues (name, city, capacity) VALUES (%s, %s, %s)"
        " RETURNING venue_id",
        (plan.name, plan.city, plan.seat_count),
    ).fetchone()
    assert venue_row is not None
    venue_id = int(venue_row[0])
    section_rows = conn.execute(
        "INSERT INTO ticketing.sections (venue_id, code, name, tier, price_zone)"
        " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
        " RETURNING code, section_id",
        (
            venue_id,
            [s.code for s in plan.sections],
            [s.name for s in plan.sections],
            [s.tier for s in plan.sections],
            [s.price_zone for s in plan.sections],
        ),
    ).fetchall()
    section_ids = {str(code): int(sid) for code, sid in section_rows}
    with conn.cursor().copy(
        "COPY ticketing.seats (venue_id, section_id, row_label, row_index, seat_number)"
        " FROM STDIN"
    ) as copy:
        for section in plan.sections:
            section_id = section_ids[section.code]
            for seat in seat_plans(section):
                copy.write_row(
                    (venue_id, section_id, seat.row_label, seat.row_index, seat.seat_number)
                )
    logger.info("created venue %s with %d seats", venue_id, plan.seat_count)
    return venue_id, True


def _ensure_events(
    conn: psycopg.Connection[tuple[Any, ...]], venue_id: int, count: int, now: datetime
) -> tuple[list[int], list[int], int]:
    created: list[int] = []
    existing: list[int] = []
    added = 0
    for index, event in enumerate(event_plans(count, now=now)):
        found = conn.execute(
            "SELECT event_id FROM ticketing.events WHERE venue_id = %s AND name = %s",
            (venue_id, event.name),
        ).fetchone()
        if found is not None:
            existing.append(int(found[0]))
            continue
        row = conn.execute(
            "INSERT INTO ticketing.events (venue_id, name, starts_at, on_sale_at, status)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING event_id",
            (venue_id, event.name, event.starts_at, event.on_sale_at, event.status),
        ).fetchone()
        assert row is not None
        event_id = int(row[0])
        created.append(event_id)
        levels = price_levels_for_event(index, list(PRICE_ZONES))
        conn.execute(
            "INSERT INTO ticketing.price_levels (event_id, code, name, price)"
            " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::numeric[])",
            (event_id, [lv.code for lv in levels], [lv.name for lv in levels],
             [lv.price for lv in levels]),
        )
        # Derived rows are built inside the server: nothing to ship over the wire.
        cur = conn.execute(
            "INSERT INTO ticketing.seat_inventory (event_id, seat_id, price_level_id, price)"
            " SELECT pl.event_id, s.seat_id, pl.price_level_id, pl.price"
            " FROM ticketing.seats s"
            " JOIN ticketing.sections sec ON sec.section_id = s.section_id"
            " JOIN ticketing.price_levels pl ON pl.event_id = %s AND pl.code = sec.price_zone"
            " WHERE s.venue_id = %s"
            " ORDER BY s.seat_id"
            " ON CONFLICT DO NOTHING",
            (event_id, venue_id),
        )
        added += cur.rowcount
    return created, existing, added
