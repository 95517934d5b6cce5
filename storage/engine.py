"""Engine set-up and transactions for SQLite (embedded default) and PostgreSQL.

SQLite conventions, applied on every new DBAPI connection:

- ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers.
- ``busy_timeout`` (30 s): a writer waits for the write lock instead of failing with
  "database is locked".
- ``foreign_keys=ON``: cascades and RESTRICT are enforced (off only while migrating, where table
  rebuilds must not cascade).
- The driver's own transaction handling is switched off (``isolation_level = None``) and every
  write transaction starts with ``BEGIN IMMEDIATE``, so the write lock is taken up front. A
  deferred transaction that reads and then writes can fail with SQLITE_BUSY without waiting;
  an immediate one waits its turn. Read-only transactions (``Database.read``) use plain
  ``BEGIN`` so readers never queue behind writers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError

from storage.errors import Conflict, StoreError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
URL_EXAMPLES = (
    "sqlite:////absolute/path/headlab.db or postgresql+psycopg://user:password@host:5432/headlab"
)
_READ_ONLY = "headlab_read_only"


def parse_db_url(url: str) -> URL:
    """Parse and check a database URL; a malformed one raises StoreError naming HEADLAB_DB."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as exc:
        raise StoreError(
            f"HEADLAB_DB={url!r} is not a valid SQLAlchemy database URL ({exc}); "
            f"set it to e.g. {URL_EXAMPLES}"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"HEADLAB_DB={url!r} names the database backend {backend!r}; headlab supports "
            f"SQLite and PostgreSQL, e.g. {URL_EXAMPLES}"
        )
    return parsed


def make_engine(url: str, *, foreign_keys: bool = True) -> Engine:
    """An Engine for ``url`` with headlab's connection settings (see the module docstring)."""
    parsed = parse_db_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        _create_sqlite_parent(parsed)
    try:
        engine = create_engine(
            parsed,
            connect_args={"timeout": BUSY_TIMEOUT_S} if is_sqlite else {},
            pool_pre_ping=not is_sqlite,
        )
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise StoreError(
            f"HEADLAB_DB={url!r}: the database driver is not installed ({exc}); install it "
            f"(e.g. `pip install psycopg[binary]` for PostgreSQL) or use a SQLite URL"
        ) from None
    if is_sqlite:
        _install_sqlite_hooks(engine, foreign_keys=foreign_keys)
    return engine


def _create_sqlite_parent(parsed: URL) -> None:
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    parent = Path(database).expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the database directory {parent} ({exc.strerror or exc}); "
            f"make it writable or point HEADLAB_DB / HEADLAB_HOME elsewhere"
        ) from None


def _install_sqlite_hooks(engine: Engine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Database:
    """An engine plus the two kinds of transaction the store uses.

    Driver errors leave as store errors: an integrity violation (a concurrent duplicate name, a
    referenced row) as ``Conflict``, anything else (missing table, unreadable file, full disk)
    as ``StoreError`` naming the database and ``headlab db check``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown_url = parse_db_url(url).render_as_string(hide_password=True)
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite); rolled back on error."""
        with self._driver_errors(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction: a consistent snapshot that never takes the write lock."""
        with self._driver_errors(), self.engine.connect() as conn:
            conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _driver_errors(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            raise Conflict(
                f"the database refused the change: {exc.orig}; nothing was written"
            ) from None
        except DBAPIError as exc:
            raise StoreError(
                f"database error at {self.shown_url}: {exc.orig}; check it with `headlab db check`"
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()
