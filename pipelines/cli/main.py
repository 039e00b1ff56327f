"""The `seatflow` command line: one Typer app, one module per command group."""

from __future__ import annotations

import typer

import pipelines.cli.backfill_cmd as backfill_cmd
from pipelines.cli import (
    bench_cmd,
    connectors_cmd,
    demo_cmd,
    host_cmd,
    processor_cmd,
    schemas_cmd,
    serve_cmd,
    stack_cmd,
)
from pipelines.cli.output import SeatflowGroup

app = typer.Typer(
    name="seatflow",
    help="Seat availability, streamed from the ticketing host's database.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    cls=SeatflowGroup,
)
app.add_typer(stack_cmd.app, name="stack", help="The local stack: PostgreSQL, Kafka, Connect, registry.")
app.add_typer(connectors_cmd.app, name="connectors", help="Kafka Connect connectors from connectors/.")
app.command("migrate")(host_cmd.migrate)
app.command("seed")(host_cmd.seed)
app.command("simulate")(host_cmd.simulate)
app.add_typer(processor_cmd.app, name="processor", help="The availability processor.")
app.command("demo")(demo_cmd.demo)
app.command("deploy")(demo_cmd.deploy)
app.command("serve")(serve_cmd.serve)
app.add_typer(bench_cmd.app, name="bench", help="Benchmarks, with a report.")
app.add_typer(schemas_cmd.app, name="schemas", help="Avro schemas in schemas/ and the registry.")
app.add_typer(backfill_cmd.app, name="backfill", help="Backfill an event's availability; reconcile.")

__all__ = ["app"]


if __name__ == "__main__":
    app()
