"""The ticketing host against a real PostgreSQL: migrations, seed, on-sale, Debezium's role.

Each run works in a throwaway database (owned by the app role) next to `ticketing`, so it
never disturbs the stack's data; roles are cluster-wide and shared.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pipelines.host import CAPTURED_TABLES, PUBLICATION
from pipelines.host.migrate import apply_migrations
from pipelines.host.seed import seed_host
from pipelines.host.simulate import OnSaleStats, onsale
from pipelines.settings import Settings
from pipelines.stack.postgres import superuser_dsn

pytestmark = pytest.mark.integration


def _superuser(settings: Settings, database: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(
        superuser_dsn(settings, database or settings.pg_database),
        autocommit=True,
        connect_timeout=10,
    )


@pytest.fixture(scope="module")
def host_settings() -> Iterator[Settings]:
    base = Settings()
    database = f"ticketing_hosttest_{os.getpid()}"
    with _superuser(base, "postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(database), sql.Identifier(base.pg_app_user)))
    try:
        yield Settings(pg_database=database)
    finally:
        with _superuser(base, "postgres") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))


@pytest.fixture(scope="module")
def migrated(host_settings: Settings) -> list[str]:
    dsn = superuser_dsn(host_settings, host_settings.pg_database)
    return [m.label for m in apply_migrations(host_settings, superuser_dsn=dsn)]


@pytest.fixture(scope="module")
def seeded(host_settings: Settings, migrated: list[str]) -> Settings:
    seed_host(host_settings, events=2)
    return host_settings


def _app(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.pg_dsn(), autocommit=True, connect_timeout=10)


def _one(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_migrate_applies_everything_once(host_settings: Settings, migrated: list[str]) -> None:
    assert migrated == ["0001_schema", "0002_debezium_role", "0003_publication"]
    dsn = superuser_dsn(host_settings, host_settings.pg_database)
    assert apply_migrations(host_settings, superuser_dsn=dsn) == []
    with _app(host_settings) as conn:
        owners = conn.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'ticketing'"
        ).fetchall()
        assert {t for t, _ in owners} >= set(CAPTURED_TABLES)
        assert {o for _, o in owners} == {host_settings.pg_app_user}
        identities = dict(conn.execute(
            "SELECT c.relname, c.relreplident FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'ticketing' AND c.relkind = 'r'"
        ).fetchall())
        assert identities["seat_inventory"] == "f"
        assert identities["seats"] == "d"
        published = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s", (PUBLICATION,)
        ).fetchall()}
        assert published == set(CAPTURED_TABLES)
        keyless = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'ticketing' AND c.relkind = 'r' AND NOT EXISTS ("
            "  SELECT FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')"
        ).fetchall()
        assert keyless == []


def test_seed_creates_a_stadium_of_inventory_idempotently(seeded: Settings) -> None:
    with _app(seeded) as conn:
        seats = _one(conn, "SELECT count(*) FROM ticketing.seats")
        assert seats >= 50_000
        assert _one(conn, "SELECT count(*) FROM ticketing.seat_inventory") == 2 * seats
        assert _one(conn, "SELECT count(*) FROM ticketing.seat_inventory"
                          " WHERE status <> 'open' OR version <> 1") == 0
        assert _one(conn, "SELECT count(*) FROM ticketing.events WHERE status = 'on_sale'") == 2
        assert _one(conn, "SELECT count(*) FROM ticketing.price_levels") == 10
    again = seed_host(seeded, events=2)
    assert (again.events_created, again.inventory_rows_added) == ([], 0)
    assert again.seats == seats


def test_version_grows_on_every_update(seeded: Settings) -> None:
    with _app(seeded) as conn, conn.transaction(force_rollback=True):
        row = conn.execute("SELECT event_id, seat_id FROM ticketing.seat_inventory LIMIT 1")
        event_id, seat_id = row.fetchone() or (None, None)
        for expected in (2, 3):
            version = _one(conn, "UPDATE ticketing.seat_inventory SET price = price"
                                 " WHERE event_id = %s AND seat_id = %s RETURNING version",
                           (event_id, seat_id))
            assert version == expected


@pytest.mark.parametrize("batch", [1, 8], ids=["a transaction each", "group commit"])
def test_onsale_leaves_the_host_consistent(seeded: Settings, batch: int) -> None:
    seed_host(seeded, events=2, reset=True)  # each case counts its own changes from version 1
    async def two_box_offices() -> list[OnSaleStats]:
        # Same seed: both offices' buyers want the same seats at the same moment.
        return list(await asyncio.gather(*(
            onsale(seeded, duration=4, buyers=100, hold_ttl=1.0, seed=42, connections=2,
                   batch=batch)
            for _ in range(2)
        )))

    runs = asyncio.run(two_box_offices())
    total = {name: sum(getattr(r, name) for r in runs) for name in (
        "holds", "sales", "releases", "expiries", "conflicts", "seats_held", "seats_sold",
        "seats_released", "seats_expired", "seat_changes")}
    assert total["sales"] > 0 and total["releases"] > 0 and total["expiries"] > 0
    assert total["conflicts"] > 0

    with _app(seeded) as conn:
        def count(query: str) -> int:
            return int(_one(conn, query))

        # Every update of seat_inventory bumped a version, and each was a counted change.
        assert count("SELECT sum(version - 1) FROM ticketing.seat_inventory") == (
            total["seat_changes"])
        assert count("SELECT count(*) FROM ticketing.seat_inventory si"
                     " LEFT JOIN ticketing.orders o USING (order_id)"
                     " WHERE si.status = 'sold' AND o.event_id IS DISTINCT FROM si.event_id") == 0
        assert count("SELECT count(*) FROM ticketing.seat_inventory si"
                     " LEFT JOIN ticketing.holds h USING (hold_id)"
                     " WHERE si.status = 'held' AND (h.status IS DISTINCT FROM 'active'"
                     "  OR h.expires_at IS DISTINCT FROM si.hold_expires_at)") == 0
        # Orders and active holds account for exactly their seats, at the seats' prices.
        assert count("SELECT count(*) FROM ticketing.orders o LEFT JOIN ("
                     "  SELECT order_id, count(*) AS n, sum(price) AS total"
                     "  FROM ticketing.seat_inventory GROUP BY order_id) si USING (order_id)"
                     " WHERE (o.seat_count, o.total) IS DISTINCT FROM (si.n, si.total)") == 0
        assert count("SELECT count(*) FROM ticketing.holds h WHERE h.status = 'active'"
                     " AND h.seat_count <> (SELECT count(*) FROM ticketing.seat_inventory si"
                     "  WHERE si.hold_id = h.hold_id)") == 0
        holds = dict(conn.execute(
            "SELECT status, count(*) FROM ticketing.holds GROUP BY status").fetchall())
        assert sum(holds.values()) == total["holds"]
        assert holds.get("converted", 0) == total["sales"]
        assert holds.get("released", 0) == total["releases"]
        assert holds.get("expired", 0) == total["expiries"]
        seats = dict(conn.execute(
            "SELECT status, count(*) FROM ticketing.seat_inventory GROUP BY status").fetchall())
        assert seats.get("sold", 0) == total["seats_sold"]
        assert seats.get("held", 0) == (total["seats_held"] - total["seats_sold"]
                                        - total["seats_released"] - total["seats_expired"])
        # A held seat was last written by its hold's statement: with group commit several
        # buyers' holds share a transaction, without it each hold is a transaction of its own.
        holds_held, transactions = conn.execute(
            "SELECT count(DISTINCT hold_id), count(DISTINCT xmin::text)"
            " FROM ticketing.seat_inventory WHERE status = 'held'").fetchone() or (0, 0)
        assert holds_held > 0
        if batch == 1:
            assert transactions == holds_held
            assert all(r.transactions is None for r in runs)
        else:
            assert transactions < holds_held
            assert 0 < sum(r.transactions or 0 for r in runs) < total["holds"]


def test_debezium_role_reads_and_streams_but_cannot_write(seeded: Settings) -> None:
    dsn = seeded.pg_dsn(user=seeded.pg_debezium_user, password=seeded.pg_debezium_password)
    slot = f"hosttest_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        assert _one(conn, "SELECT count(*) FROM ticketing.seat_inventory") > 0
        # The heartbeat action query and signal inserts are allowed.
        conn.execute("INSERT INTO ticketing.heartbeat (id, ts) VALUES (1, now())"
                     " ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts")
        conn.execute("INSERT INTO ticketing.debezium_signal (id, type, data)"
                     " VALUES ('hosttest', 'log', '{\"message\": \"hi\"}')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE ticketing.seat_inventory SET status = 'sold'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ticketing.debezium_signal")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE ticketing.seats").format(
                sql.Identifier(PUBLICATION)))

        # REPLICATION lets it decode the publication through pgoutput, as Debezium will.
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            with _app(seeded) as app:
                app.execute("UPDATE ticketing.seat_inventory SET price = price"
                            " WHERE (event_id, seat_id) IN (SELECT event_id, seat_id"
                            "  FROM ticketing.seat_inventory LIMIT 3)")
            changes = _one(conn, "SELECT count(*) FROM pg_logical_slot_peek_binary_changes("
                                 "%s, NULL, NULL, 'proto_version', '1', 'publication_names', %s)",
                           (slot, PUBLICATION))
            assert changes >= 3 + 2  # three updates between BEGIN and COMMIT
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
