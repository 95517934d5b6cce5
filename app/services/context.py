"""What every page and callback of one web app shares: the store and the results reader."""

from __future__ import annotations

from dataclasses import dataclass

from app.services.results import ResultsReader
from storage.settings import Settings
from storage.store import ResultStore


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    store: ResultStore
    reader: ResultsReader

    @classmethod
    def open(cls, settings: Settings, store: ResultStore | None = None) -> WebContext:
        store = store or ResultStore.from_settings(settings)
        return cls(settings=settings, store=store, reader=ResultsReader(store))
