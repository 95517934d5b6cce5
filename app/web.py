"""The Dash web workbench: ``create_app(settings)`` builds it, ``serve_app`` runs it.

The web process only reads the store and enqueues runs; it never imports torch (a test checks
``sys.modules``). Layout: one shell (navigation + URL + page container); the router callback
renders the page listed for the path (``app.pages.ROUTES``); ``app.callbacks.CALLBACKS`` are
attached to this app instance. The layout is a function: the first page is built into it
(``app.callbacks.router.initial_page``), so a full load needs no router round trip. When an
auth setting is present every request must carry it (``app.services.auth``); serving on a
non-loopback address without one is refused.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import dash
import flask

from app.callbacks import attach_callbacks
from app.callbacks.router import initial_page
from app.components.shell import shell
from app.pages import routes
from app.services.auth import AuthRequiredError, install_auth, require_auth_for_host
from app.services.context import WebContext
from app.services.web_guard import (
    RedactTokens,
    allow_bind_host,
    inline_script_hashes,
    install_guard,
)
from storage.settings import Settings
from storage.store import ResultStore

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# Chunks of Dash's components sent with the page as fingerprinted scripts (cached for a year)
# rather than fetched when first drawn, a round trip later: dropdowns (nearly every page) and
# dcc.Graph (no page draws one now: figures are headlab.PlotlyFigure; kept for one that needs
# plotly events as Dash props, ≈ 0 ms from the code cache). Others (MathJax, Markdown, date
# pickers, uploads, tables…) still load only when a page shows one.
EAGER_CHUNKS = ("dcc/async-graph.js", "dcc/async-dropdown.js")
YEAR_S = 365 * 24 * 3600
# Dash's page template, plus preloads: the browser fetches the layout (with the first page
# built in) and the callback graph while it still runs the scripts, instead of after them.
INDEX = """<!DOCTYPE html>
<html>
    <head>
        {%metas%}
        <title>{%title%}</title>
        <link rel="preload" href="/_dash-layout" as="fetch" crossorigin="anonymous">
        <link rel="preload" href="/_dash-dependencies" as="fetch" crossorigin="anonymous">
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""

__all__ = ["AuthRequiredError", "create_app", "serve_app"]

# @babel/polyfill (core-js 2 + regenerator) is for browsers without ES2017; in a current browser
# only its regenerator runtime is used (Dash's lazy component loader), shipped alone in assets/
# (regenerator-runtime.js, 25 kB instead of 90 kB; 15-20 ms less script on every full load).
POLYFILL_TAG = re.compile(r'<script src="[^"]*/deps/polyfill@[^"]*"></script>\s*')


class Workbench(dash.Dash):
    """Dash with the page's scripts minus the ES2017 polyfill (see ``POLYFILL_TAG``), keeping
    the CSP hashes of the page's inline scripts (the renderer, clientside callbacks)."""

    script_hashes: frozenset[str] = frozenset()

    def interpolate_index(
        self,
        metas: str = "",
        title: str = "",
        css: str = "",
        config: str = "",
        scripts: str = "",
        app_entry: str = "",
        favicon: str = "",
        renderer: str = "",
    ) -> str:
        html = super().interpolate_index(
            metas=metas,
            title=title,
            css=css,
            config=config,
            scripts=POLYFILL_TAG.sub("", scripts),
            app_entry=app_entry,
            favicon=favicon,
            renderer=renderer,
        )
        self.script_hashes = inline_script_hashes(html)
        return html


def create_app(settings: Settings, store: ResultStore | None = None) -> dash.Dash:
    """Build the workbench over the store named by ``settings`` (schema checked first)."""
    ctx = WebContext.open(settings, store)
    ctx.store.check_schema()
    app = Workbench(
        __name__,
        title="headlab",
        assets_folder=str(ASSETS_DIR),
        suppress_callback_exceptions=True,
        update_title=None,  # type: ignore[arg-type]  # None keeps the tab title still (Dash docs)
        serve_locally=True,
        # component chunks load when a page first needs them; plotly.js is the cartesian
        # bundle in assets/ (figures are headlab.PlotlyFigure, which draws with window.Plotly)
        eager_loading=False,
    )
    app.index_string = INDEX
    app.server.config["HEADLAB_SETTINGS"] = settings
    install_guard(app.server, settings, lambda: app.script_hashes)
    install_auth(app.server, settings)
    for path in EAGER_CHUNKS:
        app.scripts.append_script({"relative_package_path": path, "namespace": "dash"})
    cache_assets(app.server)
    nav = [(r.path, r.title) for r in routes()]
    app.layout = lambda: shell(nav, *initial_page(ctx))
    attach_callbacks(app, ctx)
    return app


def cache_assets(server: flask.Flask) -> None:
    """Let browsers keep assets: Dash names them with their mtime (``?m=…``), so a changed
    file gets a new URL; without this every page load revalidates each asset first."""

    @server.after_request
    def _cache(response: flask.Response) -> flask.Response:
        request = flask.request
        fingerprinted = request.path.startswith("/assets/") and request.args.get("m")
        if fingerprinted and response.status_code == 200:
            response.cache_control.no_cache = None
            response.cache_control.public = True
            response.cache_control.max_age = YEAR_S
        return response


def serve_app(
    app: dash.Dash,
    host: str = "127.0.0.1",
    port: int = 8050,
    debug: bool = False,
    threads: int = 8,
) -> None:
    """Serve until interrupted: waitress (a production WSGI server, no request log), or with
    ``debug`` Werkzeug's development server with tokens redacted from its request log.
    Refuses a non-loopback ``host`` without an auth setting."""
    settings: Settings = app.server.config["HEADLAB_SETTINGS"]
    require_auth_for_host(host, settings)
    allow_bind_host(app.server, host)
    log.info("serving headlab on http://%s:%d", host, port)
    if debug:
        logging.getLogger("werkzeug").addFilter(RedactTokens())
        app.run(host=host, port=port, debug=True, use_reloader=False, threaded=True)
        return
    import waitress

    waitress.serve(
        app.server,
        host=host,
        port=port,
        threads=threads,
        ident="headlab",
        max_request_body_size=settings.max_body_bytes,
        clear_untrusted_proxy_headers=True,
    )
