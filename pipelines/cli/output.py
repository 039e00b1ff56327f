"""One console and one way to fail, so every command's messages look alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.live import Live
from typer.core import TyperGroup

from pipelines.errors import SeatflowError

__all__ = ["SeatflowGroup", "console", "err_console", "fail", "live_view"]

console = Console()
err_console = Console(stderr=True)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print one red line to stderr and exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


class SeatflowGroup(TyperGroup):
    """The command line's root group: any `SeatflowError` (and a timeout) a command lets through
    ends as its one-line message on stderr and its exit code, never as a stack trace. The one
    place where errors become exit codes; commands catch only what they print more of."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer passes its own Context
        try:
            return super().invoke(ctx)
        except SeatflowError as e:
            tail = getattr(e, "log_tail", "")
            if tail:
                err_console.rule(f"last lines of the {getattr(e, 'service', '')} log", style="red")
                err_console.print(tail.rstrip(), markup=False, highlight=False, soft_wrap=True)
                err_console.rule(style="red")
            fail(e.one_line(), code=e.exit_code)
        except TimeoutError as e:
            fail(str(e) or "timed out")


@contextmanager
def live_view(target: Console = console) -> Iterator[Live]:
    """rich's Live on `target`, left with its last frame ended by a newline. Off a terminal (a
    pipe, a file) Live prints that frame once, as it stops, without ending its last line, and the
    next message would follow the frame's bottom border on the same line."""
    live = Live(console=target, refresh_per_second=4)
    try:
        with live:
            yield live
    finally:
        if not target.is_terminal and live.renderable:
            target.line()
