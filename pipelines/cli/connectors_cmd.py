"""`seatflow connectors ...`: deploy connectors/ files to Kafka Connect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.output import console, fail
from pipelines.connect import (
    CONNECTORS_DIR,
    ConnectClient,
    ConnectError,
    apply_connector,
    load_connector_file,
)
from pipelines.settings import get_settings

app = typer.Typer(no_args_is_help=True)


def _files(paths: list[Path] | None) -> list[Path]:
    found = paths or sorted(CONNECTORS_DIR.glob("*.json"))
    if not found:
        fail(f"no connector files in {CONNECTORS_DIR}")
    return found


@app.command()
def apply(
    files: Annotated[list[Path] | None, typer.Argument(help="Connector files (default: all).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the connector's tasks run.")] = True,
) -> None:
    """Create or update connectors from their files (PUT of the config; idempotent)."""
    client = ConnectClient(get_settings().connect_url)
    try:
        for path in _files(files):
            connector = load_connector_file(path)
            outcome = apply_connector(client, connector)
            console.print(f"{connector.name}: {outcome}")
            if wait:
                client.wait_running(connector.name)
                console.print(f"{connector.name}: running")
    except ConnectError as e:
        fail(str(e))


@app.command()
def status() -> None:
    """Connector and task states of the connectors in connectors/."""
    client = ConnectClient(get_settings().connect_url)
    table = Table("connector", "state", "tasks")
    failed = False
    try:
        for path in _files(None):
            name = load_connector_file(path).name
            st = client.status(name)
            if st is None:
                table.add_row(name, "absent", "")
                failed = True
                continue
            tasks = ", ".join(f"{t['id']}:{t['state']}" for t in st["tasks"])
            failed |= st["connector"]["state"] == "FAILED" or "FAILED" in tasks
            table.add_row(name, st["connector"]["state"], tasks)
    except ConnectError as e:
        fail(str(e))
    console.print(table)
    if failed:
        raise typer.Exit(1)
