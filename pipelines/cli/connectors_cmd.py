"""`seatflow connectors ...`: connector configs in connectors/, deployed as code.

Exit codes: 0 done / all healthy; 1 findings (lint, invalid config, failed connector or task,
request refused by Connect, unreadable file); 2 usage; 3 Kafka Connect unreachable;
4 `plan --detailed-exitcode` found changes to apply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pipelines.cli.output import console, err_console
from pipelines.connect import (
    CONNECTORS_DIR,
    DEFAULT_ENV,
    ConnectClient,
    ConnectError,
    ConnectorFile,
    ConnectUnreachableError,
    TicketingHost,
    deploy_connectors,
    load_connectors,
)
from pipelines.connect.lint import lint_connectors, ticketing_host_issues
from pipelines.connect.ops import (
    ConnectorHealth,
    DeployReport,
    FieldError,
    connector_health,
    drop_replication_slot,
    format_offset,
    plan_against,
    reset_offsets,
    validate_config,
)
from pipelines.connect.plan import Plan
from pipelines.settings import get_settings
from pipelines.stack.postgres import superuser_dsn

__all__ = ["EXIT_CHANGES", "EXIT_FINDINGS", "EXIT_UNREACHABLE", "app"]

EXIT_FINDINGS = 1
EXIT_UNREACHABLE = ConnectUnreachableError.exit_code  # raised, and mapped by the CLI root
EXIT_CHANGES = 4

app = typer.Typer(no_args_is_help=True, help=__doc__)
offsets_app = typer.Typer(no_args_is_help=True, help="Source offsets (KIP-875): show or reset.")
app.add_typer(offsets_app, name="offsets")

DirOpt = Annotated[Path, typer.Option("--dir", help="Folder of connector files.")]
EnvOpt = Annotated[str, typer.Option("--env", envvar="SEATFLOW_ENV",
                                     help="Overlay folder connectors/overlays/<env>.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")]
NamesArg = Annotated[list[str], typer.Argument(help="Connector names.")]


def _client() -> ConnectClient:
    return ConnectClient.from_settings(get_settings())


def _ticketing() -> TicketingHost:
    return TicketingHost.of(get_settings())


def _emit_json(data: Any) -> None:
    console.print_json(json.dumps(data), highlight=False)


def _load(directory: Path, env: str) -> list[ConnectorFile]:
    return load_connectors(directory, env=env)


# -- rendering -----------------------------------------------------------------------------


def _table(*headers: str, title: str | None = None) -> Table:
    """Columns fold long values instead of cutting them: keys and values must stay readable."""
    table = Table(title=title, title_justify="left")
    for h in headers:
        table.add_column(h, overflow="fold")
    return table


def _print_lint(report_lint: list[Any]) -> None:
    for issue in report_lint:
        err_console.print(f"[red]lint[/] {escape(str(issue))}", highlight=False, soft_wrap=True)


def _print_invalid(errors: list[FieldError]) -> None:
    table = _table("connector", "field", "value", "error", title="Connect's validation")
    for e in errors:
        for message in e.errors:
            table.add_row(e.connector, e.key, escape(e.value or ""), escape(message))
    console.print(table)


def _print_plan(plan: Plan) -> None:
    symbol = {"add": "+", "change": "~", "remove": "-", "orphan": "?", "unchanged": "="}
    table = _table("", "connector", "key", "old", "new", title="plan")
    for item in plan.connectors:
        sign = symbol[item.action]
        if item.action in ("unchanged", "orphan"):
            note = "no file: kept (apply --prune removes it)" if item.action == "orphan" else ""
            table.add_row(sign, item.name, f"[dim]{item.action}[/]", "", note)
            continue
        table.add_row(sign, item.name, f"[dim]{len(item.changes)} key(s)[/]", "", "")
        if item.action == "change":
            for ch in (c.masked() for c in item.changes):
                table.add_row("", "", ch.key, escape(ch.old or ""), escape(ch.new or ""))
    console.print(table)
    s = plan.summary()
    console.print(f"{s['add']} to add, {s['change']} to change, {s['remove']} to remove, "
                  f"{s['unchanged']} unchanged, {s['orphan']} running without a file", highlight=False)


def _print_health(items: list[ConnectorHealth]) -> None:
    table = _table("connector", "type", "task", "state", "worker", "error")
    for h in items:
        table.add_row(h.name, h.type, "", h.state, h.worker, escape(h.trace))
        for t in h.tasks:
            table.add_row("", "", str(t.id), t.state, t.worker, escape(t.trace))
    console.print(table)


# -- commands --------------------------------------------------------------------------------


@app.command()
def lint(directory: DirOpt = CONNECTORS_DIR, env: EnvOpt = DEFAULT_ENV, as_json: JsonOpt = False) -> None:
    """Check the project's rules offline (secrets, error tolerance, heartbeats, slots, ...)."""
    connectors = _load(directory, env)
    issues = lint_connectors(connectors, ticketing=_ticketing())
    if as_json:
        _emit_json([i.as_dict() for i in issues])
    else:
        _print_lint(issues)
        if not issues:
            console.print(f"{len(connectors)} connector file(s): no findings")
    if issues:
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def validate(directory: DirOpt = CONNECTORS_DIR, env: EnvOpt = DEFAULT_ENV,
             as_json: JsonOpt = False) -> None:
    """Connect's own validation of each file, printed per field (a file aimed at another
    database than the ticketing host is refused without asking Connect)."""
    connectors = _load(directory, env)
    ticketing = _ticketing()
    elsewhere = ticketing_host_issues(connectors, ticketing)
    if elsewhere:
        if as_json:
            _emit_json([i.as_dict() for i in elsewhere])
        else:
            _print_lint(elsewhere)
            err_console.print("[red]refused:[/] nothing was sent to Connect", highlight=False)
        raise typer.Exit(EXIT_FINDINGS)
    client = _client()
    errors: list[FieldError] = []
    for c in connectors:
        found = validate_config(client, c.name, c.config, ticketing=ticketing)
        errors.extend(found)
        if not as_json and not found:
            console.print(f"{c.name}: valid")
    if as_json:
        _emit_json([e.as_dict() for e in errors])
    elif errors:
        _print_invalid(errors)
    if errors:
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def plan(
    directory: DirOpt = CONNECTORS_DIR, env: EnvOpt = DEFAULT_ENV, as_json: JsonOpt = False,
    prune: Annotated[bool, typer.Option(help="Plan to remove connectors that have no file.")] = False,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help=f"Exit {EXIT_CHANGES} when there are changes.")] = False,
) -> None:
    """The difference between the files and what runs, secrets masked."""
    connectors = _load(directory, env)
    result = plan_against(_client(), connectors, prune=prune)
    if as_json:
        _emit_json(result.as_dict())
    else:
        _print_plan(result)
    if detailed_exitcode and result.has_changes:
        raise typer.Exit(EXIT_CHANGES)


def _report(report: DeployReport, *, as_json: bool) -> None:
    if as_json:
        _emit_json(report.as_dict())
        return
    _print_lint(report.lint)
    if report.plan is not None:
        _print_plan(report.plan)
    if report.invalid:
        _print_invalid(report.invalid)
        err_console.print("[red]refused:[/] nothing was applied", highlight=False)
    for name, outcome in report.applied.items():
        console.print(f"{name}: {outcome}")


@app.command()
def apply(
    directory: DirOpt = CONNECTORS_DIR, env: EnvOpt = DEFAULT_ENV, as_json: JsonOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Stop after the plan.")] = False,
    prune: Annotated[bool, typer.Option(help="Delete connectors that have no file.")] = False,
    yes: YesOpt = False,
    wait: Annotated[bool, typer.Option(help="Wait until applied connectors run.")] = True,
) -> None:
    """Lint, validate, then create or update only what changed (idempotent)."""
    connectors = _load(directory, env)
    client = _client()

    def confirm(names: list[str]) -> bool:
        return yes or typer.confirm(f"delete {', '.join(names)} (no file)?", err=True)

    report = deploy_connectors(client, connectors, ticketing=_ticketing(), dry_run=dry_run,
                               prune=prune, confirm_prune=confirm)
    _report(report, as_json=as_json)
    if not report.ok:
        raise typer.Exit(EXIT_FINDINGS)
    if wait:
        for name, outcome in report.applied.items():
            if outcome != "deleted":
                client.wait_running(name)
                if not as_json:
                    console.print(f"{name}: running")
    if not as_json and report.stage == "applied" and not report.applied:
        console.print("nothing to apply")


@app.command()
def status(names: Annotated[list[str] | None, typer.Argument(help="Connector names (default: all).")] = None,
           directory: DirOpt = CONNECTORS_DIR, env: EnvOpt = DEFAULT_ENV,
           as_json: JsonOpt = False) -> None:
    """Connector and task states, workers and shortened error traces; exit 1 if anything failed."""
    running = _client().connectors()
    wanted = list(names or [])
    if not wanted:
        try:
            files = [c.name for c in load_connectors(directory, env=env)]
        except ConnectError:
            files = []  # status still shows what runs when the files are broken
        wanted = sorted(set(running) | set(files))
    items = [connector_health(n, running.get(n, {}).get("status")) for n in wanted]
    if as_json:
        _emit_json([h.as_dict() for h in items])
    else:
        _print_health(items)
    if any(h.failed or h.state == "ABSENT" for h in items):
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def restart(
    names: NamesArg,
    all_tasks: Annotated[bool, typer.Option("--all", help="Every task, not only failed ones.")] = False,
) -> None:
    """Restart failed tasks (and the connector if it failed); --all restarts everything."""
    client = _client()
    for name in names:
        client.restart(name, only_failed=not all_tasks)
        console.print(f"{name}: restart requested ({'all' if all_tasks else 'failed'} tasks)")


def _simple(verb: str, names: list[str]) -> None:
    client = _client()
    for name in names:
        getattr(client, verb)(name)
        console.print(f"{name}: {verb} requested")


@app.command()
def pause(names: NamesArg) -> None:
    """Pause connectors (tasks stay assigned)."""
    _simple("pause", names)


@app.command()
def resume(names: NamesArg) -> None:
    """Resume paused or stopped connectors."""
    _simple("resume", names)


@app.command()
def stop(names: NamesArg) -> None:
    """Stop connectors (tasks shut down; offsets can then be reset)."""
    _simple("stop", names)


@app.command()
def delete(names: NamesArg, yes: YesOpt = False) -> None:
    """Delete connectors (their offsets and replication slots stay)."""
    if not yes and not typer.confirm(f"delete {', '.join(names)}?", err=True):
        raise typer.Exit(EXIT_FINDINGS)
    _simple("delete", names)


@offsets_app.command("show")
def offsets_show(names: NamesArg, as_json: JsonOpt = False) -> None:
    """The committed source offsets (for Debezium PostgreSQL: the LSN)."""
    client = _client()
    found = {name: client.offsets(name) for name in names}
    if as_json:
        _emit_json(found)
        return
    table = _table("connector", "partition", "offset")
    for name, offsets in found.items():
        if not offsets:
            table.add_row(name, "", "[dim]none[/]")
        for item in offsets:
            part = ", ".join(f"{k}={v}" for k, v in item.get("partition", {}).items())
            off = ", ".join(f"{k}={format_offset(k, v)}" for k, v in (item.get("offset") or {}).items())
            table.add_row(name, escape(part), escape(off))
    console.print(table)


@offsets_app.command("reset")
def offsets_reset(
    name: Annotated[str, typer.Argument(help="Connector name.")],
    drop_slot: Annotated[bool, typer.Option("--drop-slot", help="Also drop its replication slot.")] = False,
    yes: YesOpt = False,
) -> None:
    """Stop the connector and delete its offsets (and slot); it stays stopped until `resume`."""
    plan_text = (f"{name} will be stopped, its source offsets deleted"
                 + (" and its replication slot dropped" if drop_slot else "")
                 + f"; `seatflow connectors resume {name}` then starts it from scratch (a new snapshot).")
    console.print(plan_text, highlight=False, soft_wrap=True)
    if not yes and not typer.confirm("go ahead?", err=True):
        raise typer.Exit(EXIT_FINDINGS)
    settings = get_settings()
    dsn = superuser_dsn(settings, settings.pg_database)  # a logical slot is dropped in its database
    dropper = (lambda slot: drop_replication_slot(dsn, slot)) if drop_slot else None
    reset_offsets(_client(), name, drop_slot=dropper, say=console.print)
