"""`seatflow stack ...`: the local stack (PostgreSQL, Kafka, registry, Connect)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from confluent_kafka import KafkaException
from rich.status import Status
from rich.table import Column, Table

from pipelines import stack
from pipelines.cli.output import console, fail
from pipelines.kafka.groups import group_shares
from pipelines.kafka.topics import cdc_topic
from pipelines.settings import (
    Settings,
    generated_secrets_file,
    get_settings,
    read_generated_secrets,
)
from pipelines.stack.configs import APPS
from pipelines.stack.layout import StackLayout

app = typer.Typer(no_args_is_help=True)


class ConsoleReporter:
    """Shows the current step on a spinner and prints each finished one."""

    def __init__(self, status: Status) -> None:
        self._status = status
        self._started = time.monotonic()

    def step(self, text: str) -> None:
        self._status.update(f"{text} …")

    def done(self, text: str) -> None:
        console.print(f"[green]✓[/] {text} [dim]({time.monotonic() - self._started:.0f} s)[/]",
                      highlight=False)


@app.command()
def up() -> None:
    """Start the stack (idempotent): fetch artifacts once, then PG, Kafka, registry, Connect."""
    settings = get_settings()
    started = time.monotonic()
    with console.status("Starting the stack …") as spinner:
        stack.up(settings, ConsoleReporter(spinner))
    console.print(f"[bold green]stack is up[/] in {time.monotonic() - started:.0f} s "
                  f"(home {settings.home})", highlight=False)


@app.command()
def down() -> None:
    """Stop everything `up` started (and nothing else)."""
    with console.status("Stopping the stack …"):
        stopped = stack.down(get_settings())
    console.print("stack stopped" if stopped else "stack was not running")


@app.command()
def status() -> None:
    """One line per service: port, process state, health. Exit 1 unless all are healthy."""
    rows = stack.status(get_settings())
    table = Table("service", "port", "state", "health")
    for row in rows:
        health = "[green]healthy[/]" if row.healthy else f"[red]{row.problem}[/]"
        table.add_row(row.name, str(row.port), row.state, health)
    settings = get_settings()
    for name, state in stack.apps_status(settings).items():
        port = {"dagster": str(settings.dagster_port),
                "serve": str(settings.serve_port)}.get(name, "-")
        table.add_row(name, port, state, "[dim]app[/]")
    console.print(table)
    if any(row.name == "kafka" and row.healthy for row in rows):
        _processor_instances(settings)
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


def _processor_instances(settings: Settings) -> None:
    """The processor instances as their consumer group has them, wherever they run (a Dagster
    run, supervisord, another machine): the group is what decides who processes what."""
    from pipelines.processor.config import GROUP_ID

    topic = cdc_topic(settings, "seat_inventory")
    try:
        shares = group_shares(settings, GROUP_ID, topic)
    except KafkaException as e:
        console.print(f"processor instances: unknown ({e})")
        return
    if not shares:
        console.print(f"processor instances: none in consumer group {GROUP_ID}")
        return
    table = Table(Column("processor instance", no_wrap=True), "partitions", "lag", "client",
                  title=f"consumer group {GROUP_ID} on {topic}")
    for share in shares:
        table.add_row(share.instance, ",".join(map(str, share.partitions)) or "-",
                      f"{share.lag:,}", share.client)
    console.print(table)


@app.command()
def logs(
    service: Annotated[str | None, typer.Argument(
        help="postgres, controller, kafka, registry, connect, processor, dagster or serve "
             "(default: the services)."
    )] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines.")] = 40,
) -> None:
    """The last lines of a service's log."""
    names = [s.name for s in stack.SERVICES]
    known = [*names, *APPS]
    if service is not None and service not in known:
        fail(f"unknown service {service!r}; one of: {', '.join(known)}")
    layout = StackLayout.of(get_settings())
    for name in [service] if service else names:
        if service is None:
            console.rule(f"{name} ({layout.log_of(name)})")
        text = stack.log_tail(layout, name, lines)
        console.print(text.rstrip() if text else f"(no log yet at {layout.log_of(name)})",
                      markup=False, highlight=False, soft_wrap=True)


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask.")] = False,
) -> None:
    """Stop the stack and wipe its data, logs and configs (the artifact cache stays)."""
    settings = get_settings()
    if not yes:
        typer.confirm(f"Stop the stack and delete everything under {settings.home}?", abort=True)
    removed = stack.reset(settings)
    console.print(f"wiped {len(removed)} entries under {settings.home}; "
                  f"cache kept in {settings.cache_dir}", highlight=False)


@app.command()
def secrets() -> None:
    """Where the stack's generated passwords are, and which; never their values."""
    settings = get_settings()
    path = generated_secrets_file(settings.home)
    if not path.exists():
        console.print(f"none yet: `seatflow stack up` generates them into {path}", highlight=False)
        return
    console.print(f"{path} (mode {path.stat().st_mode & 0o777:o}, owner uid {path.stat().st_uid}):",
                  highlight=False)
    for name, value in sorted(read_generated_secrets(settings.home).items()):
        overridden = getattr(settings, name).get_secret_value() != value
        console.print(f"  SEATFLOW_{name.upper()}" + (
            " (overridden by the environment or the settings file)" if overridden else ""),
            highlight=False)
    console.print(f"The PostgreSQL superuser ({settings.pg_superuser}) has no password: it logs "
                  f"in through the socket in {StackLayout.of(settings).pg_socket_dir} only.",
                  highlight=False)
