#!/usr/bin/env bash
# Lint, bring the local stack up, run every test against it, and always bring it down again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

ruff check pipelines tests
mypy
seatflow schemas check

trap 'seatflow stack down || true' EXIT
seatflow stack up
pytest "$@"
