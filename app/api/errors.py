"""The one exception type of the Python API, and the mapping of every layer's errors to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from analysis.configs import ConfigError
from app.catalog import CatalogError
from app.export.errors import ExportError
from app.launching import LaunchRefused
from storage.errors import StoreError


class HeadlabError(ValueError):
    """Something asked of headlab cannot be done; the message names the problem and the fix."""


class RunFailed(HeadlabError):
    """A run ended FAILED or CANCELLED; ``run_id`` names it (``lab.get_run(run_id).error``)."""

    def __init__(self, message: str, run_id: int) -> None:
        super().__init__(message)
        self.run_id = run_id


@contextmanager
def api_errors() -> Iterator[None]:
    """Re-raise store, config, catalog, launch and export errors as :class:`HeadlabError`."""
    try:
        yield
    except HeadlabError:
        raise
    except (StoreError, ConfigError, CatalogError, LaunchRefused, ExportError) as exc:
        raise HeadlabError(str(exc)) from None
