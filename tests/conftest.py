"""Shared fixtures: an isolated HEADLAB_HOME with a migrated SQLite store, and a real
PostgreSQL server for the tests that run on both databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TORCH_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the session (``tests/pg_server.py``)."""
    from tests.pg_server import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def headlab_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for subprocesses and in-process code: a fresh data directory."""
    home = tmp_path / "home"
    monkeypatch.setenv("HEADLAB_HOME", str(home))
    monkeypatch.delenv("HEADLAB_DB", raising=False)
    env = dict(os.environ)
    env["HEADLAB_HOME"] = str(home)
    env.pop("HEADLAB_DB", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def store(headlab_env: dict[str, str]):
    from storage import migrate
    from storage.settings import load_settings
    from storage.store import ResultStore

    settings = load_settings()
    migrate.upgrade(settings.db_url)
    return ResultStore.from_settings(settings)
