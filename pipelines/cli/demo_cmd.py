"""`seatflow demo`: the whole pipeline on the local stack, with a small on-sale on screen."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from pipelines import stack
from pipelines.cli.output import console
from pipelines.cli.processor_cmd import watch_availability
from pipelines.cli.stack_cmd import ConsoleReporter
from pipelines.deploy import deploy_pipeline, wait_caught_up
from pipelines.host.simulate import OnSaleStats, run_onsale
from pipelines.settings import get_settings

__all__ = ["demo", "deploy"]


def deploy(
    events: Annotated[int, typer.Option(min=1, help="Events to seed when none exist.")] = 3,
) -> None:
    """Deploy the pipeline on a running stack (local or docker-compose.yml): migrate, seed,
    register the schemas, create the partitioned topics, apply the connectors. Idempotent."""
    deploy_pipeline(get_settings(), events=events,
                    say=lambda m: console.print(f"[green]✓[/] {m}"))


def demo(
    events: Annotated[int, typer.Option(min=1, help="Events to seed.")] = 3,
    rate: Annotated[float, typer.Option(min=1, help="Seat changes per second of the on-sale.")] = 400,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of on-sale.")] = 20,
    dagster: Annotated[bool, typer.Option(
        help="Run the processor from Dagster (UI on 127.0.0.1); --no-dagster runs it alone.")] = True,
) -> None:
    """Stack up, deploy, run the processor and a small on-sale; leave everything running."""
    settings = get_settings()
    with console.status("Starting the stack …") as spinner:
        settings = stack.up(settings, ConsoleReporter(spinner))
    deploy_pipeline(settings, events=events, say=lambda m: console.print(f"[green]✓[/] {m}"))
    if dagster:
        # Dagster runs the processor: its sensor keeps one availability_stream run alive.
        stack.start_app(settings, "dagster")
        console.print(f"[green]✓[/] Dagster UI on http://{settings.bind_host}:"
                      f"{settings.dagster_port}; its sensor starts the processor")
    else:
        stack.start_app(settings, "processor")
        console.print("[green]✓[/] processor running (log: seatflow stack logs processor)")
    # The topics exist (deploy created them): the page follows the snapshot as it lands.
    stack.start_app(settings, "serve")
    console.print(f"[green]✓[/] live seat map on http://{settings.bind_host}:"
                  f"{settings.serve_port} (API under /api, metrics on /metrics)")
    with console.status("Waiting for the snapshot …") as spinner:
        wait_caught_up(settings, say=lambda m: spinner.update(m))
    console.print("[green]✓[/] every seat captured and published")

    result: dict[str, OnSaleStats] = {}
    onsale = threading.Thread(
        target=lambda: result.setdefault("stats", run_onsale(settings, rate=rate, duration=duration)),
        daemon=True,
    )
    console.print(f"on-sale: {rate:.0f} seat changes/s for {duration:.0f} s; live availability:")
    onsale.start()
    watch_availability(settings, duration_s=duration + 5)
    onsale.join(30)
    stats = result.get("stats")
    if stats is not None:
        console.print(f"on-sale done: {stats.holds} holds, {stats.sales} sales, "
                      f"{stats.releases} releases, {stats.expiries} expiries, "
                      f"{stats.conflicts} conflicts", highlight=False)
    console.print(
        "\nThe stack, the processor, the Dagster UI and the seat map keep running.\n"
        f"  seat map:     http://{settings.bind_host}:{settings.serve_port}\n"
        "  watch again:  .venv/bin/seatflow processor watch\n"
        "  more on-sale: .venv/bin/seatflow simulate --duration 60\n"
        "  status:       .venv/bin/seatflow stack status\n"
        "  stop all:     make stop   (or .venv/bin/seatflow stack down)"
    )
