"""Renders the page registered for the URL path (query parameters go to the page builder)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import dash
from dash import Input, Output, html

from app import ids
from app.components.shell import not_found
from app.pages import route_for
from app.services.context import WebContext
from storage.errors import StoreError

log = logging.getLogger(__name__)


def parse_query(search: str | None) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v}


def register(app: dash.Dash, ctx: WebContext) -> None:
    @app.callback(
        Output(ids.PAGE, "children"), Input(ids.URL, "pathname"), Input(ids.URL, "search")
    )
    def render_page(pathname: str | None, search: str | None) -> object:
        route = route_for(pathname)
        if route is None:
            return not_found(pathname or "/")
        try:
            return route.build(ctx, parse_query(search))
        except StoreError as exc:
            log.warning("page %s: %s", pathname, exc)
            return html.Div(
                [html.H1(route.title), html.P(str(exc), className="message error")],
                className="page",
            )
