"""`seatflow serve`: the availability topics served to fans (an API, a live stream, a seat map)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipelines.serve.state import ServeState

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["SERVE_MODULE", "ServeState", "run"]

# `python -m pipelines.serve`: how the stack's supervisord runs it.
SERVE_MODULE = "pipelines.serve"


def run(*, host: str, port: int, app: FastAPI | None = None) -> None:
    """Serve on host:port until stopped (SIGTERM or Ctrl-C): the app over the availability
    topics, or `app` (the fan-out benchmark's, fed by a synthetic on-sale)."""
    import uvicorn

    from pipelines.serve.app import create_app
    from pipelines.settings import get_settings

    # The registry client's HTTP library logs every request at INFO: noise in serve's log.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # One worker process: the state lives in it. Scaling out is more `serve` instances, each
    # reading the topics itself, behind a load balancer.
    uvicorn.run(app or create_app(get_settings()), host=host, port=port, log_level="info",
                access_log=False, timeout_graceful_shutdown=5)
