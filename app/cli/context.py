"""Opening the store for a command, and turning store errors into CLI errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.catalog import CatalogError
from app.cli.output import CliError
from app.export.errors import ExportError
from storage.errors import Conflict, NotFound, SchemaError, StoreError
from storage.settings import Settings, load_settings
from storage.store import ResultStore

EXIT_NOT_FOUND = 1  # 2 is click's usage-error code
EXIT_CONFLICT = 3
EXIT_SCHEMA = 4


def open_store(settings: Settings | None = None, *, check_schema: bool = True) -> ResultStore:
    settings = settings or load_settings()
    with store_errors():
        store = ResultStore.from_settings(settings)
        if check_schema:
            store.check_schema()
        return store


@contextmanager
def store_errors() -> Iterator[None]:
    """Map store, catalog and export errors to CLI errors with their exit codes."""
    try:
        yield
    except CatalogError as exc:
        raise CliError(str(exc), exc.exit_code) from None
    except ExportError as exc:
        raise CliError(str(exc)) from None
    except NotFound as exc:
        raise CliError(str(exc), EXIT_NOT_FOUND) from None
    except Conflict as exc:
        raise CliError(str(exc), EXIT_CONFLICT) from None
    except SchemaError as exc:
        raise CliError(str(exc), EXIT_SCHEMA) from None
    except StoreError as exc:
        raise CliError(str(exc)) from None
