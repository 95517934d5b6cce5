"""The frame around every page: top navigation, the URL, the page container."""

from __future__ import annotations

from dash import dcc, html

from app import ids


def shell(nav_items: list[tuple[str, str]]) -> html.Div:
    """``nav_items`` are (path, title) pairs in display order."""
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
            html.Main(id=ids.PAGE, className="main"),
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
