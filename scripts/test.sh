#!/usr/bin/env bash
# The whole test suite: sets up what it needs, runs lint and pytest. "No tests collected" is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DAGSTER_HOME="$PWD/var/test-dagster-home"
mkdir -p "$DAGSTER_HOME"
.venv/bin/ruff check psp_assets tests bench
.venv/bin/psp schema --check
# PostgreSQL at 127.0.0.1:5432 (Dagster storage and ledger tests): start the machine's cluster when it is down
if [ -d /etc/postgresql ] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
set +e
# On every core (PSP_TEST_WORKERS=0 runs in this process): most tests wait on PHP, Node, sshd or Postgres
# subprocesses, and pytest-xdist's worksteal keeps both workers busy to the end despite tests of 0.01 to
# 100 s. Every test sets up its own instance, ports, databases and directories, so workers share nothing.
.venv/bin/python -m pytest -n "${PSP_TEST_WORKERS:-auto}" --dist worksteal "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
