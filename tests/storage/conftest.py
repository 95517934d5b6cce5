"""Fixtures for the store tests: a real, migrated SQLite file per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import migrate
from storage.store import ResultStore


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


@pytest.fixture
def store(tmp_path: Path, db_url: str):
    migrate.upgrade(db_url)
    with ResultStore(db_url, tmp_path / "artifacts") as result_store:
        yield result_store
