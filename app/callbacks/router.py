"""Renders the page registered for the URL path (query parameters go to the page builder).

The first page comes with the layout: ``initial_page`` reads the page's URL from the layout
request's ``Referer`` and builds it on the server, so a full load needs no router round trip.
``ids.PAGE_URL`` holds the URL whose page is shown; a clientside gate passes only a different
URL on to the server router (in-app navigation, back/forward), so nothing is rendered twice.
Without a usable ``Referer`` the layout comes with an empty page and the router renders it.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import dash
import flask
from dash import Input, Output, State, html

from app import ids
from app.callbacks.wiring import ClientsideCallback, callback
from app.components.shell import not_found
from app.pages import route_for
from app.services.context import WebContext
from storage.errors import StoreError

log = logging.getLogger(__name__)

GATE_JS = """
function (pathname, search, shown) {
    const url = (pathname || '/') + (search || '');
    return url === shown ? window.dash_clientside.no_update : url;
}
"""


def parse_query(search: str | None) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items() if v}


def render(ctx: WebContext, url: str) -> object:
    """The page for ``url`` (path + ``?query``), built from its query parameters."""
    parts = urlsplit(url)
    route = route_for(parts.path)
    if route is None:
        return not_found(parts.path or "/")
    try:
        return route.build(ctx, parse_query(parts.query))
    except StoreError as exc:
        log.warning("page %s: %s", parts.path, exc)
        return html.Div(
            [html.H1(route.title), html.P(str(exc), className="message error")],
            className="page",
        )


def referring_url() -> str | None:
    """The URL (path + ``?query``) of the page that asked for the layout, when on this
    server."""
    if not flask.has_request_context() or not flask.request.referrer:
        return None
    parts = urlsplit(flask.request.referrer)
    if parts.netloc != flask.request.host:
        return None
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def initial_page(ctx: WebContext) -> tuple[object, str | None]:
    """(page, its URL) for the layout request; (None, None) when the URL is unknown."""
    url = referring_url()
    if url is None:
        return None, None
    return render(ctx, url), url


gate_url = ClientsideCallback(
    GATE_JS,
    (
        Output(ids.PAGE_URL, "data"),
        Input(ids.URL, "pathname"),
        Input(ids.URL, "search"),
        State(ids.PAGE_URL, "data"),
    ),
)


@callback(Output(ids.PAGE, "children"), Input(ids.PAGE_URL, "data"), prevent_initial_call=True)
def render_page(ctx: WebContext, url: str | None) -> object:
    if url is None:
        raise dash.exceptions.PreventUpdate
    return render(ctx, url)
