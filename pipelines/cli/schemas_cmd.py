"""`seatflow schemas ...`: the Avro schemas in schemas/ and the registry."""

from __future__ import annotations

from typing import Annotated

import requests
import typer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from rich import box
from rich.syntax import Syntax
from rich.table import Table

from pipelines.avro.schemas import (
    CompatibilityLevels,
    IncompatibleSchemaError,
    LocalSchema,
    SchemaRegistry,
    SubjectCheck,
    check_schemas,
    diff_schema,
    load_compatibility,
    local_schemas,
    offline_checks,
    register_schemas,
)
from pipelines.cli.output import console, fail
from pipelines.settings import get_settings

app = typer.Typer(no_args_is_help=True)

_STATUS_STYLE = {
    "offline": "cyan", "new": "green", "unchanged": "dim", "compatible": "green",
    "registered": "green", "invalid": "bold red", "incompatible": "bold red",
}
_SubjectsArg = Annotated[list[str] | None, typer.Argument(help="Subjects (default: all).")]


def _load(subjects: list[str] | None = None) -> tuple[list[LocalSchema], CompatibilityLevels]:
    try:
        schemas, levels = local_schemas(), load_compatibility()
    except (ValueError, KeyError, OSError) as e:
        fail(str(e))
    if subjects:
        unknown = set(subjects) - {s.subject for s in schemas}
        if unknown:
            fail(f"no schema in schemas/ for {', '.join(sorted(unknown))}")
        schemas = [s for s in schemas if s.subject in subjects]
    return schemas, levels


def _registry() -> SchemaRegistry:
    return SchemaRegistry.from_settings(get_settings())


def _styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _print_checks(checks: list[SubjectCheck]) -> None:
    table = Table(title="schemas/ against the registry", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("subject", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("versions")
    table.add_column("status", no_wrap=True)
    for c in checks:
        level = c.level
        if c.registry_level not in (None, c.level):
            level += f"\n[yellow]registry: {c.registry_level}[/]"
        versions = ", ".join(map(str, c.versions)) or "-"
        status = _styled(c.status) + (f" = v{c.version}" if c.version else "")
        table.add_row(c.subject, level, versions, status)
    console.print(table)
    for c in checks:
        if c.problems:
            console.print(f"[bold red]{c.subject}[/] ({c.status}):", highlight=False)
            for problem in c.problems:
                console.print(f"  - {problem}", highlight=False, markup=False)


@app.command()
def check(
    subjects: _SubjectsArg = None,
    offline: Annotated[bool, typer.Option("--offline", help="Parse and lint only.")] = False,
) -> None:
    """Parse every schema and ask the registry whether each is compatible with its versions."""
    schemas, levels = _load(subjects)
    registry = _registry()
    if not offline and not registry.reachable():
        console.print(f"[yellow]registry at {registry.base_url} is not reachable: "
                      "parsing and linting only[/]", highlight=False)
        offline = True
    try:
        checks = offline_checks(schemas, levels) if offline else check_schemas(registry, schemas, levels)
    except (SchemaRegistryError, requests.RequestException) as e:
        fail(f"registry: {e}")
    _print_checks(checks)
    broken = [c.subject for c in checks if not c.ok]
    if broken:
        fail(f"{len(broken)} of {len(checks)} schemas break: {', '.join(broken)}")
    console.print(f"[green]{len(checks)} schemas ok[/]"
                  + (" (offline: not compared with the registry)" if offline else ""), highlight=False)


@app.command()
def register(subjects: _SubjectsArg = None) -> None:
    """Check, then set levels and register new versions; nothing is registered if one breaks."""
    schemas, levels = _load(subjects)
    try:
        registrations = register_schemas(_registry(), schemas, levels=levels)
    except IncompatibleSchemaError as e:
        _print_checks(e.checks)
        fail(f"{e}; the registry was left as it was")
    except (SchemaRegistryError, requests.RequestException) as e:
        fail(f"registry: {e}")
    table = Table(title="registered", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("subject", "level", "version", "schema id", "status"):
        table.add_column(column)
    for r in registrations:
        table.add_row(r.subject, r.level, str(r.version), str(r.schema_id), _styled(r.status))
    console.print(table)


@app.command()
def diff(subjects: _SubjectsArg = None) -> None:
    """Show each local schema against the latest version registered under its subject."""
    schemas, _ = _load(subjects)
    registry = _registry()
    try:
        diffs = [diff_schema(registry, s) for s in schemas]
    except (SchemaRegistryError, requests.RequestException) as e:
        fail(f"registry: {e}")
    for d in diffs:
        if d.latest_version is None:
            console.print(f"[green]{d.subject}[/]: not registered yet", highlight=False)
        elif d.identical:
            console.print(f"[dim]{d.subject}: same as version {d.latest_version}[/]", highlight=False)
        else:
            console.print(f"[yellow]{d.subject}[/]: differs from version {d.latest_version}",
                          highlight=False)
            console.print(Syntax("\n".join(d.lines), "diff", theme="ansi_dark"))
