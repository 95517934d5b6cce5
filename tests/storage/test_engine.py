"""Engine set-up: URL validation, SQLite pragmas, write transactions taking the lock at BEGIN."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.engine import Database, make_engine
from storage.errors import StoreError
from storage.store import ResultStore


@pytest.mark.parametrize("url", ["not a url", "sqlite//missing-colon.db", "://nothing", ""])
def test_malformed_url_names_headlab_db_and_an_example(url: str) -> None:
    with pytest.raises(StoreError) as info:
        make_engine(url)
    message = str(info.value)
    assert "HEADLAB_DB" in message
    assert "sqlite:////" in message and "postgresql" in message


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(StoreError, match="supports SQLite and PostgreSQL"):
        make_engine("mysql://user@host/db")


def test_postgresql_url_is_accepted_without_connecting() -> None:
    from storage.engine import parse_db_url

    assert parse_db_url("postgresql+psycopg://u:p@localhost:5432/headlab").database == "headlab"


def test_store_on_malformed_url_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="HEADLAB_DB"):
        ResultStore("definitely not a url", tmp_path / "artifacts")


def test_sqlite_pragmas_and_parent_directory(tmp_path: Path) -> None:
    db_file = tmp_path / "deep" / "er" / "h.db"
    engine = make_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()
    assert db_file.exists()


def test_database_directory_that_cannot_exist_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the database directory"):
        make_engine(f"sqlite:///{blocker}/sub/h.db")


def _try_raw_write(db_file: Path) -> str:
    raw = sqlite3.connect(db_file, timeout=0, isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")
        return "got the lock"
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        raw.close()


def test_write_transaction_takes_the_lock_at_begin_and_reads_do_not(tmp_path: Path) -> None:
    db_file = tmp_path / "lock.db"
    db = Database(f"sqlite:///{db_file}")
    with db.write() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with db.write() as conn:
        conn.execute(text("SELECT 1"))  # no write yet: an IMMEDIATE transaction holds the lock
        assert _try_raw_write(db_file) == "database is locked"
    with db.read() as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()
        assert _try_raw_write(db_file) == "got the lock"
    db.dispose()
