"""Bring the pipeline up on a running stack: schema, data, schemas, topics, connector."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from pipelines.avro.schemas import SchemaRegistry, local_schemas, register_schemas
from pipelines.connect import ConnectClient, TicketingHost, apply_connector, load_connectors
from pipelines.host.migrate import apply_migrations
from pipelines.host.seed import seed_host
from pipelines.kafka import clients
from pipelines.kafka.acls import ensure_acls
from pipelines.kafka.admin import ensure_topics
from pipelines.kafka.groups import end_offsets, group_lag, group_members
from pipelines.kafka.topics import cdc_topic, output_topics
from pipelines.polling import PollTimeoutError, poll
from pipelines.processor.config import GROUP_ID
from pipelines.settings import Settings
from pipelines.stack.postgres import superuser_dsn

__all__ = ["deploy_pipeline", "snapshot_progress", "wait_captured", "wait_caught_up"]


def deploy_pipeline(
    settings: Settings, *, events: int = 3, say: Callable[[str], None] = lambda _: None
) -> None:
    """Idempotent: migrate, seed, register schemas, create topics, apply the connectors."""
    applied = apply_migrations(settings,
                               superuser_dsn=superuser_dsn(settings, settings.pg_database))
    say(f"migrations applied: {len(applied)}")
    seeded = seed_host(settings, events=events)
    say(f"seeded: {seeded.seats:,} seats, {seeded.inventory_rows_added:,} new inventory rows")
    # Registering schemas is a writer's job (REGISTRY_PRINCIPALS), not the admin's.
    writer = SchemaRegistry.from_settings(settings.registry_login_as("writer"))
    registrations = register_schemas(writer, local_schemas())
    say("schemas: " + ", ".join(f"{r.subject} v{r.version} ({r.status})" for r in registrations))
    created = ensure_topics(clients.admin(settings), output_topics(settings))
    say(f"topics created: {', '.join(created) or 'none (all exist)'}")
    if settings.kafka_sasl_mechanism is not None and settings.kafka_username == "admin":
        # A broker that asks for logins: the principals' ACLs (created at `stack up` too).
        say(f"ACLs: {ensure_acls(clients.admin(settings), settings)} in place")
    client = ConnectClient.from_settings(settings)
    ticketing = TicketingHost.of(settings)
    for connector in load_connectors():
        outcome = apply_connector(client, connector, ticketing=ticketing)
        client.wait_running(connector.name)
        say(f"connector {connector.name}: {outcome}, running")


def snapshot_progress(settings: Settings) -> tuple[int, int, int]:
    """(seat_inventory rows, records in its CDC topic, records the processor has not committed)."""
    with psycopg.connect(settings.pg_dsn(), connect_timeout=10) as conn:
        row = conn.execute("SELECT count(*) FROM ticketing.seat_inventory").fetchone()
    topic = cdc_topic(settings, "seat_inventory")
    captured = sum(end_offsets(settings, topic).values())
    return (row[0] if row else 0), captured, group_lag(settings, GROUP_ID, topic)


def wait_caught_up(
    settings: Settings, *, timeout_s: float = 600, say: Callable[[str], None] = lambda _: None
) -> None:
    """Wait until Debezium has captured every change committed before this call (the snapshot
    included) and a running processor has published all of them."""
    deadline = time.monotonic() + timeout_s
    wait_captured(settings, timeout_s=timeout_s, say=say)

    def progress() -> tuple[int, int, int, bool]:
        # The snapshot does not move the replication slot: count its records too.
        rows, captured, lag = snapshot_progress(settings)
        return rows, captured, lag, group_members(settings, GROUP_ID) > 0

    def tell(p: tuple[int, int, int, bool]) -> None:
        rows, captured, lag, running = p
        say(f"snapshot: {captured:,} of {rows:,} seats captured, {lag:,} still to publish"
            + ("" if running else "; the processor is starting"))

    try:
        poll(progress, until=lambda p: p[1] >= p[0] and p[2] == 0 and p[3],
             timeout_s=max(deadline - time.monotonic(), 0), on_wait=tell)
    except PollTimeoutError as e:
        rows, captured, lag, _ = e.last
        raise TimeoutError(f"not caught up after {timeout_s:.0f} s: {captured:,} of {rows:,} "
                           f"seats captured, {lag:,} changes not yet published") from e


def wait_captured(settings: Settings, *, timeout_s: float = 600,
                  say: Callable[[str], None] = lambda _: None) -> None:
    """Wait until Debezium has confirmed to its replication slots all the WAL written before
    this call: every change committed so far is in Kafka. (A count of records cannot tell:
    after `seed --reset` the topic holds more records than seats before Debezium has sent one
    of the reset's.) When nothing else changes, Debezium's heartbeat (every 10 s) moves the
    slot along, so this can take that long."""
    slots = [c.config["slot.name"] for c in load_connectors() if "slot.name" in c.config]
    with psycopg.connect(superuser_dsn(settings), autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        target = row[0] if row else None

        def confirmed() -> bool:
            row = conn.execute(
                "SELECT count(*) = %(n)s AND bool_and(confirmed_flush_lsn >= %(lsn)s::pg_lsn)"
                " FROM pg_replication_slots WHERE slot_name = ANY(%(slots)s)",
                {"n": len(slots), "lsn": target, "slots": slots}).fetchone()
            return bool(row and row[0])

        try:
            poll(confirmed, until=bool, timeout_s=timeout_s,
                 on_wait=lambda _: say(f"Debezium capturing up to WAL {target}"))
        except PollTimeoutError as e:
            raise TimeoutError(f"Debezium has not confirmed WAL up to {target} after "
                               f"{timeout_s:.0f} s (slots {', '.join(slots)})") from e
