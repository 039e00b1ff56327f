"""The one family of errors seatflow's own code raises to say an operation cannot go on.

Every module's error derives from `SeatflowError`, whose message is one line that names what is
wrong and where; the command line turns any of them into that line on stderr and the error's
`exit_code` in one place (`pipelines.cli.main`), so no command needs its own handler.

Errors about one record's bytes (`avro.WireFormatError`, `processor.core.ChangeError`) are not
in the family: they are values the processor routes to the dead-letter topic, never the reason a
command stops.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["SeatflowError"]


class SeatflowError(Exception):
    """An operation of seatflow cannot go on; str() says what and where to look."""

    exit_code: ClassVar[int] = 1

    def one_line(self) -> str:
        """The message the command line prints."""
        return str(self)
