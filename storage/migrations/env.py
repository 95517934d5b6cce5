"""Alembic environment for headlab's schema (``storage.orm.metadata``).

``storage.migrate`` configures Alembic in code (no alembic.ini) and hands this script an open
connection inside one transaction via ``config.attributes["connection"]``, so an upgrade is
all-or-nothing. SQLite uses batch mode ("move and copy") for ALTERs it lacks.
"""

from __future__ import annotations

from alembic import context

from storage.engine import make_engine
from storage.orm import metadata


def _configure_and_run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    # Used only by the plain `alembic` command line during development.
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "", foreign_keys=False)
    with engine.begin() as conn:
        _configure_and_run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("headlab migrations run online only: use `headlab db upgrade`")
run_migrations_online()
