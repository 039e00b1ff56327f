#!/usr/bin/env bash
# Lint, bring the local stack up, run every test against it, and bring it down again
# (unless it was already up before: then it is left running as it was).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

# The seat map page's browser test drives Debian's chromium (Playwright's own browser download
# cannot work on these machines): installed here when missing, as `stack up` installs PostgreSQL.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends chromium
fi

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
