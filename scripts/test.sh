#!/usr/bin/env bash
# The whole test suite: sets up what it needs, runs lint and pytest. "No tests collected" is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DAGSTER_HOME="$PWD/var/test-dagster-home"
mkdir -p "$DAGSTER_HOME"
.venv/bin/ruff check psp_assets tests
.venv/bin/psp schema --check
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
