"""`seatflow bench ...`: benchmarks with a report (never timed tests)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from pipelines.bench import bench_latency, bench_processor, report_dict
from pipelines.cli.output import console
from pipelines.settings import get_settings

app = typer.Typer(no_args_is_help=True)


def _target_cell(targets: dict[str, tuple[str, bool]], name: str) -> str:
    """A figure's target and whether it was met; empty for a figure without one."""
    target, ok = targets.get(name, ("", True))
    return f"{target} {'[green]met[/]' if ok else '[red]missed[/]'}" if target else ""


@app.command()
def processor(
    changes: Annotated[int, typer.Option(min=1000, help="Changes to preload.")] = 200_000,
    repeats: Annotated[int, typer.Option(min=1, help="Rounds; the report gives medians.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """The processor (exactly once) against a plain consume-and-produce of the same bytes.

    Needs the stack up and the pipeline deployed (make demo, or seatflow stack up + deploy).
    """
    report = bench_processor(get_settings(), changes=changes, repeats=repeats,
                             say=lambda m: console.print(f"[dim]{m}…[/]") if not as_json else None)
    data = report_dict(report)
    if as_json:
        console.print_json(json.dumps(data))
        return
    targets = {"processor_rate": (">= 20000", report.processor_rate >= 20_000),
               "processor_busy_rate": (">= 20000", report.processor_busy_rate >= 20_000),
               "ratio": (">= 0.40", report.ratio >= 0.40),
               "state_memory_mb": ("< 500", report.state_memory_mb < 500)}
    table = Table("figure", "value", "target", title="seatflow bench processor")
    for name, value in data.items():
        shown = (", ".join(map(str, value)) if isinstance(value, list)
                 else f"{value:,}" if isinstance(value, int) else str(value))
        table.add_row(name, shown, _target_cell(targets, name))
    console.print(table)


@app.command()
def latency(
    rate: Annotated[float, typer.Option(min=1, help="Seat changes per second.")] = 2000,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of on-sale, measured.")] = 30,
    warmup: Annotated[float, typer.Option(
        min=0, help="Seconds of on-sale before, not measured (0: none).")] = 30,
    start_processor: Annotated[bool, typer.Option(
        help="Start a processor for the run (--no-start-processor when one runs already).")] = True,
) -> None:
    """Commit-to-availability latency during an on-sale (p50, p95, p99, max)."""
    report = bench_latency(get_settings(), rate=rate, duration=duration, warmup=warmup,
                           start_processor=start_processor,
                           say=lambda m: console.print(f"[dim]{m}…[/]"))
    targets = {"p50_ms": ("< 100", report.p50_ms < 100), "p99_ms": ("< 300", report.p99_ms < 300)}
    table = Table("figure", "value", "target", title="seatflow bench latency")
    for name, value in asdict(report).items():
        table.add_row(name, str(value), _target_cell(targets, name))
    console.print(table)
