"""`seatflow serve`: the availability topics served to fans (an API, a live stream, a seat map)."""

from __future__ import annotations

from pipelines.serve.state import ServeState

__all__ = ["SERVE_MODULE", "ServeState"]

# `python -m pipelines.serve`: how the stack's supervisord runs it.
SERVE_MODULE = "pipelines.serve"
