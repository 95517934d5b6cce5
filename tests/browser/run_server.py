"""Serve the web app for tests: ``python -m tests.browser.run_server PORT`` (settings from
the ``HEADLAB_*`` environment; the same ``create_app`` + ``serve_app`` that ``headlab serve``
calls, without worker processes)."""

from __future__ import annotations

import logging
import sys

from app.web import create_app, serve_app
from storage.settings import load_settings

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    serve_app(create_app(load_settings()), host=host, port=int(sys.argv[1]))
