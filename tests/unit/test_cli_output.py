"""The CLI's shared output: the live view ends its last frame on a line of its own."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from pipelines.cli.output import live_view

pytestmark = pytest.mark.unit


def table() -> Table:
    t = Table("event", "open", title="availability")
    t.add_row("1", "42")
    return t


@pytest.mark.parametrize("terminal", [False, True])
def test_the_message_after_a_live_view_starts_a_line_of_its_own(terminal: bool) -> None:
    out = io.StringIO()
    target = Console(file=out, force_terminal=terminal, color_system=None, width=60)
    with live_view(target) as live:
        live.update(table())
    target.print("on-sale done")
    lines = out.getvalue().splitlines()
    assert lines[-2].endswith("┘")
    assert lines[-1].endswith("on-sale done") and "┘" not in lines[-1]


def test_a_live_view_stopped_by_ctrl_c_still_ends_its_line() -> None:
    out = io.StringIO()
    target = Console(file=out, force_terminal=False, width=60)
    with pytest.raises(KeyboardInterrupt), live_view(target) as live:
        live.update(table())
        raise KeyboardInterrupt
    assert out.getvalue().endswith("┘\n")


def test_a_live_view_that_showed_nothing_adds_no_blank_line() -> None:
    out = io.StringIO()
    target = Console(file=out, force_terminal=False, width=60)
    with live_view(target):
        pass
    assert out.getvalue() == ""
