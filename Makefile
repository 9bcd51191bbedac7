# The two commands a person needs (see README):
#   make demo   install everything, run the whole demo fleet through Dagster, serve the UI
#   make test   run the whole test suite (what CI runs)
#   make test-fast   the edit-test loop: the fast tests only (see below)
SHELL := /bin/bash
# the repository root unless the environment names another instance (the shutdown test does)
DAGSTER_HOME ?= $(CURDIR)
export DAGSTER_HOME
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: setup demo fleet ui prod-ui test test-fast lint layout bench clean

setup:
	@scripts/setup.sh

# scripts/supervise.py: on Ctrl-C or SIGTERM everything these start (webserver, daemon, code servers,
# runs and their PHP and Node runtimes) is gone within 6 s, not left to time out (docs/operations.md).
SUPERVISE := .venv/bin/python scripts/supervise.py --

fleet: setup
	.venv/bin/psp validate
	$(SUPERVISE) .venv/bin/psp fleet

demo: fleet ui

# The same workspace file (and so the same code location name, psp_assets) as the daemon and every
# `dagster ... -w workspace.yaml` command.
ui: setup
	$(SUPERVISE) .venv/bin/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

# The production instance (deploy/postgres/dagster.yaml: Postgres storage, the queue with its limits, run
# retries and monitoring) served from this checkout: DAGSTER_HOME is var/dagster-prod holding a link to
# that file. Connection from PSP_PG_* (defaults: the local server, database psp_dagster). docs/operations.md
PROD_HOME ?= $(CURDIR)/var/dagster-prod
prod-ui: export DAGSTER_HOME := $(PROD_HOME)
prod-ui: export PSP_PG_HOST ?= 127.0.0.1
prod-ui: export PSP_PG_PORT ?= 5432
prod-ui: export PSP_PG_USER ?= postgres
prod-ui: export PSP_PG_PASSWORD ?=
prod-ui: export PSP_PG_DB ?= psp_dagster
prod-ui: setup
	@mkdir -p $(PROD_HOME) && ln -sfn $(CURDIR)/deploy/postgres/dagster.yaml $(PROD_HOME)/dagster.yaml
	.venv/bin/python deploy/postgres/ensure_database.py
	$(SUPERVISE) .venv/bin/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

test:
	@scripts/test.sh

# The edit-test loop: the tests of the core, the Dagster layer, the templates, the CLI and the stand-ins,
# without sshd, WordPress, PostgreSQL or a browser (tests/integration, tests/production, tests/e2e) and
# without the PHP matrix: the Dagster tests check on the machine's PHP only (PSP_PHP_MATRIX=0) and the
# tests marked php_matrix are left out; tests/compat and `make test` cover every PHP version.
FAST_TESTS := tests/core tests/defs tests/templates tests/cli tests/standins
test-fast:
	@PSP_PHP_MATRIX=0 scripts/test.sh $(FAST_TESTS) -m "not php_matrix" $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check psp_assets tests
	.venv/bin/ruff format --check psp_assets tests

# README.md's layout block, generated from the package docstrings (a test fails when it is stale)
layout: setup
	.venv/bin/python -m tests.architecture.layout --write

clean:
	rm -rf var
