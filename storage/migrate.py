"""Schema migrations: upgrade a database to this headlab's schema, and verify it before use.

Alembic is configured in code (``script_location`` = this package's ``migrations`` folder), so it
works from an installed package without an ``alembic.ini``. An upgrade runs in ONE transaction
(``BEGIN IMMEDIATE`` on SQLite, with foreign keys off so batch table rebuilds cannot cascade):
it either completes or leaves the database as it was, and two processes upgrading at once are
serialised. Revisions are linear: ``0001``, ``0002``, …

``check_schema`` is what every long-lived process calls on start: it refuses an empty database,
an out-of-date one (naming ``headlab db upgrade``), and one written by a newer headlab.

Changing the schema: edit ``storage/orm.py``, then autogenerate the next revision against a
database at head and review it (keep explicit constraint names; no ``storage`` imports in it)::

    from alembic import command
    from storage.engine import make_engine
    from storage.migrate import alembic_config, upgrade
    upgrade(URL); config = alembic_config()
    with make_engine(URL, foreign_keys=False).begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message="…", autogenerate=True, rev_id="0003")

``tests/storage/test_migrations.py`` then proves ORM == migrated schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from storage.engine import make_engine, parse_db_url
from storage.errors import SchemaError, StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_HINT = "run `headlab db upgrade`"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None, "storage/migrations/versions has no revisions"
    return head


def known_revisions() -> list[str]:
    """All revisions this headlab knows, oldest first."""
    return [s.revision for s in reversed(list(_script().walk_revisions()))]


def _shown(url: str) -> str:
    return parse_db_url(url).render_as_string(hide_password=True)


def _missing_sqlite_file(url: str) -> bool:
    parsed = parse_db_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return False
    return not database.startswith("file:") and not Path(database).expanduser().exists()


@contextmanager
def _connection(url: str, *, write: bool, foreign_keys: bool = True) -> Iterator[Connection]:
    engine = make_engine(url, foreign_keys=foreign_keys)
    try:
        with engine.connect() as conn:
            if not write:
                conn.execution_options(headlab_read_only=True)
            with conn.begin():
                yield conn
    except DBAPIError as exc:
        raise StoreError(
            f"cannot use the database at {_shown(url)}: {exc.orig}; check HEADLAB_DB and that "
            f"the file or server is reachable and writable"
        ) from None
    finally:
        engine.dispose()


def _revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current_revision(url: str) -> str | None:
    """The database's schema revision, or None for an empty (or absent) database."""
    if _missing_sqlite_file(url):
        return None
    with _connection(url, write=False) as conn:
        return _revision_of(conn)


def _newer_message(url: str, revision: str) -> str:
    return (
        f"the database at {_shown(url)} has schema revision {revision!r}, which this headlab "
        f"does not know (it knows {', '.join(known_revisions())}): it was written by a newer "
        f"headlab. This headlab is older than the database; upgrade headlab "
        f"(`pip install -U headlab`) or point HEADLAB_DB at another database"
    )


def upgrade(url: str, revision: str = "head") -> str:
    """Create or upgrade the schema to ``revision`` in one transaction; returns the new revision."""
    config = alembic_config()
    with _connection(url, write=True, foreign_keys=False) as conn:
        current = _revision_of(conn)
        if current is not None and current not in known_revisions():
            raise SchemaError(_newer_message(url, current))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        _check_foreign_keys(conn, url)
        new = _revision_of(conn)
    assert new is not None
    return new


def _check_foreign_keys(conn: Connection, url: str) -> None:
    if conn.dialect.name != "sqlite":
        return
    problems = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
    if problems:
        raise SchemaError(
            f"the upgrade of {_shown(url)} would leave broken references ({problems[:5]}); "
            f"it was rolled back and nothing changed"
        )


def check_schema(url: str) -> str:
    """Raise SchemaError (with the fix) unless the database is at this headlab's head revision."""
    head = head_revision()
    if _missing_sqlite_file(url):
        raise SchemaError(
            f"the database at {_shown(url)} does not exist yet (not initialised); {UPGRADE_HINT}"
        )
    with _connection(url, write=False) as conn:
        current = _revision_of(conn)
        tables = set(inspect(conn).get_table_names())
    if current == head:
        return current
    if current is None:
        if tables - {"alembic_version"}:
            raise SchemaError(
                f"the database at {_shown(url)} has tables ({', '.join(sorted(tables))}) but no "
                f"headlab schema version: it was not created by headlab; point HEADLAB_DB at a "
                f"headlab database or a new file"
            )
        raise SchemaError(f"the database at {_shown(url)} is not initialised; {UPGRADE_HINT}")
    if current not in known_revisions():
        raise SchemaError(_newer_message(url, current))
    raise SchemaError(
        f"the database at {_shown(url)} is at schema revision {current} but this headlab needs "
        f"{head}: the schema is out of date; {UPGRADE_HINT} (stored data is kept)"
    )
