"""Routes of the web workbench, listed in navigation order. A route's builder turns the query
string into a layout by calling the page's layout builder (``app.components``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.pages import (
    circuits,
    compare,
    explore,
    heads,
    home,
    launch,
    models,
    overlap,
    prompts,
    runs,
    sae,
)
from app.services.context import WebContext

Builder = Callable[[WebContext, dict[str, str]], Any]


@dataclass(frozen=True)
class Route:
    path: str
    title: str
    build: Builder


ROUTES: tuple[Route, ...] = (
    Route("/", "Home", home.build),
    Route("/explore", "Explore", explore.build),
    Route("/heads", "Heads", heads.build),
    Route("/runs", "Runs", runs.build),
    Route("/launch", "Launch", launch.build),
    Route("/circuits", "Circuits", circuits.build),
    Route("/overlap", "Overlap", overlap.build),
    Route("/sae", "SAEs", sae.build),
    Route("/compare", "Compare", compare.build),
    Route("/models", "Models", models.build),
    Route("/prompts", "Prompt sets", prompts.build),
)
_BY_PATH = {route.path: route for route in ROUTES}


def routes() -> list[Route]:
    """All routes, in navigation order."""
    return list(ROUTES)


def route_for(path: str | None) -> Route | None:
    return _BY_PATH.get((path or "/").rstrip("/") or "/")
