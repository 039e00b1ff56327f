"""`python -m pipelines.serve`: serve on the settings' bind_host and serve_port."""

from __future__ import annotations

import logging

from pipelines.serve import run
from pipelines.settings import get_settings

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    run(host=settings.bind_host, port=settings.serve_port)
