"""`seatflow migrate | seed | simulate`: the ticketing host's schema, data and traffic."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.output import console
from pipelines.host import PUBLICATION
from pipelines.host.migrate import apply_migrations
from pipelines.host.seed import DEFAULT_SEATS, seed_host
from pipelines.host.simulate import OnSaleStats, run_onsale
from pipelines.settings import get_settings
from pipelines.stack.postgres import superuser_dsn

__all__ = ["migrate", "seed", "simulate"]


def migrate() -> None:
    """Apply the ticketing host's pending schema migrations (as the PostgreSQL superuser)."""
    settings = get_settings()
    applied = apply_migrations(settings,
                               superuser_dsn=superuser_dsn(settings, settings.pg_database))
    if not applied:
        console.print("schema is up to date; nothing to apply")
        return
    for migration in applied:
        console.print(f"applied [bold]{migration.label}[/]", highlight=False)
    console.print(f"{len(applied)} migration(s) applied; publication {PUBLICATION} is ready")


def seed(
    events: Annotated[int, typer.Option(min=0, help="Events on sale (existing ones are kept).")] = 3,
    seats: Annotated[
        int, typer.Option(min=100, help="Approximate stadium size, in seats.")
    ] = DEFAULT_SEATS,
    reset: Annotated[
        bool, typer.Option("--reset", help="Empty every ticketing table first.")
    ] = False,
) -> None:
    """Create a stadium, its events on sale and every seat's open inventory; idempotent."""
    result = seed_host(get_settings(), events=events, seats=seats, reset=reset)
    venue = "created" if result.venue_created else "kept"
    console.print(
        f"venue {result.venue_id} {venue}: {result.sections} sections, {result.seats:,} seats",
        highlight=False,
    )
    console.print(
        f"events created {result.events_created or '-'}, kept {result.events_existing or '-'}; "
        f"{result.inventory_rows_added:,} inventory rows added in {result.seconds:.1f} s",
        highlight=False,
    )


def simulate(
    rate: Annotated[
        float, typer.Option(min=0, help="Target seat changes per second; 0 = flat out.")
    ] = 0.0,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds to run.")] = 30.0,
    buyers: Annotated[int, typer.Option(min=1, help="Concurrent buyers.")] = 400,
    event: Annotated[
        list[int] | None, typer.Option(help="Event id (repeatable); default: events on sale.")
    ] = None,
    hold_ttl: Annotated[float, typer.Option(min=0.1, help="Seconds a hold lasts.")] = 15.0,
    seed: Annotated[int | None, typer.Option(help="Random seed, for a repeatable run.")] = None,
    connections: Annotated[int, typer.Option(min=1, help="Database connections.")] = 4,
    batch: Annotated[int, typer.Option(
        min=1, help="Buyers' statements per transaction (group commit); 1: each its own.")] = 1,
) -> None:
    """Run an on-sale: buyers hold, buy and release seats; a sweeper expires stale holds."""
    console.print(
        f"on-sale for {duration:g} s: {buyers} buyers, "
        f"{'flat out' if rate == 0 else f'{rate:g} seat changes/s'}, hold TTL {hold_ttl:g} s",
        highlight=False,
    )
    stats = run_onsale(
        get_settings(),
        rate=rate,
        duration=duration,
        buyers=buyers,
        events=event or None,
        hold_ttl=hold_ttl,
        seed=seed,
        connections=connections,
        batch=batch,
    )
    console.print(stats_table(stats))


def stats_table(stats: OnSaleStats) -> Table:
    """What an on-sale did, as a table."""
    table = Table("", "count", "seats", title=f"on-sale of events {stats.events}")
    table.add_row("holds", f"{stats.holds:,}", f"{stats.seats_held:,}")
    table.add_row("sales", f"{stats.sales:,}", f"{stats.seats_sold:,}")
    table.add_row("releases", f"{stats.releases:,}", f"{stats.seats_released:,}")
    table.add_row("expiries", f"{stats.expiries:,}", f"{stats.seats_expired:,}")
    table.add_row("lapsed checkouts", f"{stats.lapsed:,}", "")
    table.add_row("conflicts", f"{stats.conflicts:,}", "")
    if stats.transactions is not None:
        table.add_row("group commits", f"{stats.transactions:,}", "")
    table.add_row(
        "seat changes",
        f"{stats.seat_changes:,}",
        f"{stats.changes_per_second:,.0f}/s over {stats.seconds:.1f} s",
    )
    if stats.sold_out:
        table.caption = f"sold out: events {stats.sold_out}"
    return table
