# headlab — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8050
export HEADLAB_HOME ?= $(CURDIR)/headlab-data
export TORCH_NUM_THREADS ?= 2

.PHONY: run test install lock system-deps lint bench demo clean

# The tested dependency set is requirements.lock (torch pinned to its CPU wheel); the project
# itself installs on top of it without resolving anything again.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Re-resolve the lock from pyproject.toml's bounds (then run `make test` before committing it).
lock: install
	$(BIN)/pip-compile -q --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file requirements.lock pyproject.toml

# Debian packages: Chromium for browser tests and kaleido figure export; PostgreSQL's server
# for the tests that run the store on a real PostgreSQL (tests/pg_server.py starts its own).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-dejavu-core fonts-liberation poppler-utils postgresql; \
	  else echo "chromium or postgresql not found and apt-get unavailable: install Chromium (browser tests, figure export) and PostgreSQL's server (store tests)"; fi; \
	fi

demo: install
	$(BIN)/headlab db upgrade
	$(BIN)/headlab demo prepare

run: install system-deps demo
	$(BIN)/headlab serve --host $(HOST) --port $(PORT) --workers 1

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=20 tests

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: install
	$(BIN)/python bench/patching.py

clean:
	rm -rf $(VENV) headlab-data
