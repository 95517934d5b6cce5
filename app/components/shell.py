"""The frame around every page: top navigation, the URL, the page container."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from app import ids


def shell(
    nav_items: list[tuple[str, str]], page: Any = None, page_url: str | None = None
) -> html.Div:
    """``nav_items`` are (path, title) pairs in display order; ``page`` is the first page's
    content and ``page_url`` its URL (path + query), when the server already built it."""
    links = [dcc.Link(title, href=path, className="nav-link") for path, title in nav_items]
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            html.Header(
                [
                    dcc.Link(
                        [html.Span("head", className="logo-a"), "lab"], href="/", className="logo"
                    ),
                    html.Nav(links, id=ids.NAV, className="nav"),
                ],
                className="topbar",
            ),
            dcc.Store(id=ids.HEADS_KEY),
            dcc.Store(id=ids.HEADS_CLICK),
            dcc.Store(id=ids.PAGE_URL, data=page_url),
            html.Main(page, id=ids.PAGE, className="main"),
        ],
        className="app",
    )


def not_found(path: str) -> html.Div:
    return html.Div(
        [
            html.H1("Page not found"),
            html.P(f"There is no page at {path}."),
            dcc.Link("Go to the home page", href="/"),
        ],
        className="page",
    )
