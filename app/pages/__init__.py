"""Routes of the web workbench. Each page module registers one route whose builder turns the
query string into a layout by calling the page's layout builder (``app.components``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.services.context import WebContext

PAGE_MODULES: tuple[str, ...] = (
    "app.pages.home",
    "app.pages.heads",
    "app.pages.runs",
    "app.pages.launch",
    "app.pages.circuits",
    "app.pages.sae",
    "app.pages.compare",
    "app.pages.models",
    "app.pages.prompts",
)

Builder = Callable[[WebContext, dict[str, str]], Any]


@dataclass(frozen=True)
class Route:
    path: str
    title: str
    build: Builder


_ROUTES: dict[str, Route] = {}


def register_route(path: str, title: str, build: Builder) -> None:
    _ROUTES[path] = Route(path, title, build)


def routes() -> list[Route]:
    """All routes, in navigation order."""
    for name in PAGE_MODULES:
        importlib.import_module(name)
    return list(_ROUTES.values())  # modules register in PAGE_MODULES order


def route_for(path: str | None) -> Route | None:
    routes()
    return _ROUTES.get((path or "/").rstrip("/") or "/")
