"""The one exception the local stack raises."""

from __future__ import annotations

from pipelines.errors import SeatflowError

__all__ = ["StackError"]


class StackError(SeatflowError):
    """Something in the local stack failed; the message says what and where to look."""

    def __init__(self, message: str, *, service: str | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.service = service
        self.log_tail = log_tail

    def one_line(self) -> str:
        return f"{self.service}: {self}" if self.service else str(self)
