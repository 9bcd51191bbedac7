# The two commands a person needs (see README):
#   make demo   install everything, run the whole demo fleet through Dagster, serve the UI
#   make test   run the whole test suite (what CI runs)
SHELL := /bin/bash
export DAGSTER_HOME := $(CURDIR)
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: setup demo fleet ui test lint bench clean

setup:
	@scripts/setup.sh

fleet: setup
	.venv/bin/psp validate
	.venv/bin/psp fleet

demo: fleet ui

ui: setup
	.venv/bin/dagster dev -h $(HOST) -p $(PORT)

test:
	@scripts/test.sh

lint: setup
	.venv/bin/ruff check psp_assets tests
	.venv/bin/ruff format --check psp_assets tests

clean:
	rm -rf var
