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

.PHONY: run test install system-deps lint bench demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel; an unpinned resolve would pull CUDA builds
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages: Chromium for browser tests and kaleido figure export.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-dejavu-core fonts-liberation poppler-utils; \
	  else echo "chromium not found and apt-get unavailable: install Chromium for browser tests and figure export"; fi; \
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
