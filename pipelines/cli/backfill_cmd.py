"""`seatflow backfill ...`: re-create an event's availability, and reconcile it with the DB."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipelines.backfill import METHODS, Progress, backfill_event
from pipelines.cli.output import console, fail
from pipelines.reconcile import on_sale_events, reconcile_events
from pipelines.settings import get_settings

app = typer.Typer(no_args_is_help=True)

# Exit codes: 0 done and in agreement, 1 differences remain, 2 cannot backfill (no such event,
# Connect down for the Debezium way, a stall).
DIFFERENCES, CANNOT = 1, 2


@app.command()
def event(
    event_id: Annotated[int, typer.Argument(help="The event to backfill (ticketing.events).")],
    method: Annotated[str, typer.Option(
        help="debezium: an incremental snapshot through the signal table; database: rows read "
             "from PostgreSQL and republished (Connect down, CDC topics compacted).")] = "debezium",
    timeout: Annotated[float, typer.Option(min=1, help="Seconds before giving up.")] = 600,
    reconcile: Annotated[bool, typer.Option(help="Reconcile the event afterwards.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Backfill one event while the stream runs; prints rows, seconds and seats per second."""
    if method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}, not {method!r}", code=CANNOT)
    settings = get_settings()

    def progress(p: Progress) -> None:
        if not as_json:
            console.print(f"[dim]{p.covered:,} of {p.seats:,} seats captured ({p.rows:,} snapshot "
                          f"rows, {p.streamed:,} streamed) in {p.seconds:.1f} s, "
                          f"{p.seats_per_second:,.0f} seats/s[/]", highlight=False)

    report = backfill_event(settings, event_id, method=method,
                            timeout_s=timeout, progress=progress,
                            say=lambda m: None if as_json else console.print(f"[dim]{m}[/]"))
    data = report.as_dict()
    result = reconcile_events(settings, [event_id])[event_id] if reconcile else None
    if result is not None:
        data["reconciliation"] = result.summary()
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(f"backfilled event {event_id} ({method}): {report.seats:,} seats, "
                      f"{report.rows:,} snapshot rows, {report.streamed:,} streamed changes; "
                      f"captured in {report.capture_seconds:.1f} s, published in "
                      f"{report.seconds:.1f} s: {report.seats_per_second:,.0f} seats/s",
                      highlight=False)
        if result is not None:
            console.print(result.report(), highlight=False)
    if result is not None and not result.passed:
        raise typer.Exit(DIFFERENCES)


@app.command()
def reconcile(
    event_id: Annotated[list[int] | None, typer.Option(
        "--event", help="Event to reconcile (repeatable); default: every event on sale.")] = None,
    attempts: Annotated[int, typer.Option(min=1, help="Reads while changes are in flight.")] = 3,
) -> None:
    """The availability topics against the database, seat by seat, then the counts."""
    settings = get_settings()
    events = event_id or on_sale_events(settings)
    if not events:
        console.print("no event on sale")
        return
    results = reconcile_events(settings, events, attempts=attempts)
    for result in results.values():
        console.print(result.report(), highlight=False)
    if not all(r.passed for r in results.values()):
        raise typer.Exit(DIFFERENCES)
