"""One console and one way to fail, so every command's messages look alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.live import Live

__all__ = ["console", "err_console", "fail", "live_view"]

console = Console()
err_console = Console(stderr=True)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print one red line to stderr and exit with `code`."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


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
