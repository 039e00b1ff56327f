"""`seatflow serve`: the availability API, its live stream and the seat map page."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from pipelines.settings import get_settings

__all__ = ["serve"]


def serve(
    host: Annotated[str | None, typer.Option(
        help="Address to listen on (default: SEATFLOW_BIND_HOST).")] = None,
    port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Port to listen on (default: SEATFLOW_SERVE_PORT).")] = None,
) -> None:
    """Serve the availability topics to browsers: the seat map page, its API and live stream."""
    from pipelines.serve import run

    settings = get_settings()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(host=host or settings.bind_host, port=port or settings.serve_port)
