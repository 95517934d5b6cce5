"""The Dash web workbench: ``create_app(settings)`` builds it, ``serve_app`` runs it.

The web process only reads the store and enqueues runs; it never imports torch (a test checks
``sys.modules``). Layout: one shell (navigation + URL + page container); the router callback
renders the page registered for the path (``app.pages``); each ``app.callbacks`` module attaches
its callbacks to this app instance. When an auth setting is present every request must carry it
(``app.services.auth``); serving on a non-loopback address without one is refused.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import dash

from app.callbacks import CALLBACK_MODULES
from app.components.shell import shell
from app.pages import routes
from app.services.auth import AuthRequiredError, install_auth, require_auth_for_host
from app.services.context import WebContext
from storage.settings import Settings
from storage.store import ResultStore

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"

__all__ = ["AuthRequiredError", "create_app", "serve_app"]


def create_app(settings: Settings, store: ResultStore | None = None) -> dash.Dash:
    """Build the workbench over the store named by ``settings`` (schema checked first)."""
    ctx = WebContext.open(settings, store)
    ctx.store.check_schema()
    app = dash.Dash(
        __name__,
        title="headlab",
        assets_folder=str(ASSETS_DIR),
        suppress_callback_exceptions=True,
        update_title=None,  # type: ignore[arg-type]  # None keeps the tab title still (Dash docs)
        serve_locally=True,
        eager_loading=True,  # fetch plotly.js and table chunks with the page, not serially
    )
    app.server.config["HEADLAB_SETTINGS"] = settings
    install_auth(app.server, settings)
    app.layout = shell([(r.path, r.title) for r in routes()])
    for name in CALLBACK_MODULES:
        importlib.import_module(name).register(app, ctx)
    return app


def serve_app(
    app: dash.Dash, host: str = "127.0.0.1", port: int = 8050, debug: bool = False
) -> None:
    """Serve until interrupted. Refuses a non-loopback ``host`` without an auth setting."""
    settings: Settings = app.server.config["HEADLAB_SETTINGS"]
    require_auth_for_host(host, settings)
    log.info("serving headlab on http://%s:%d", host, port)
    app.run(host=host, port=port, debug=debug, use_reloader=False, threaded=True)
