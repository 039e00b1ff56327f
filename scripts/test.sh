#!/usr/bin/env bash
# Lint, bring the local stack up, run every test against it, and bring it down again
# (unless it was already up before: then it is left running as it was).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

ruff check pipelines tests
mypy
seatflow schemas check

if seatflow stack status >/dev/null 2>&1; then
  echo "the stack is already up: testing against it and leaving it up"
else
  trap 'seatflow stack down || true' EXIT
  seatflow stack up
fi
seatflow schemas check
pytest "$@"
