"""Fixtures for the store tests: a real, migrated database per test — every test runs twice, on
a SQLite file and on a fresh database of the session's PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import migrate
from storage.store import ResultStore


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/t.db"
    server = request.getfixturevalue("pg_server")
    return str(server.url(server.create_database()))


@pytest.fixture
def store(tmp_path: Path, db_url: str):
    migrate.upgrade(db_url)
    with ResultStore(db_url, tmp_path / "artifacts") as result_store:
        yield result_store
