"""Figure export (one callback per menu, by pattern-matching ids) and table CSV downloads.

The browser sends only the figure spec (run id, metric, head…), the format and the preset; the
server rebuilds the figure from the store with the same builder as the page and returns the
bytes as the menu's ``download``, which ``headlab.ExportMenu`` saves. No file path ever comes
from the client.
"""

from __future__ import annotations

import logging
from typing import Any

import dash
from dash import MATCH, Input, Output, State, dcc

from app import ids
from app.callbacks.wiring import callback
from app.export.errors import ExportError
from app.services.context import WebContext
from app.services.figures import build_figure, spec_name
from storage.errors import StoreError

log = logging.getLogger(__name__)


def figure_bytes(figure: Any, fmt: str, preset: str) -> bytes:
    """The figure laid out for print at ``preset`` and rendered by the shared kaleido server."""
    from app.export.paper import figure_aspect, paper_figure
    from app.export.presets import check_format, resolve_size
    from app.export.render import shared_renderer

    size = resolve_size(preset)
    paper = paper_figure(figure, size)
    height = size.height_px(figure_aspect(figure))
    return shared_renderer().render(
        paper, check_format(fmt), width_px=size.width_px, height_px=height
    )


menu = ids.export_id(MATCH)


@callback(
    Output(menu, "download"),
    Output(menu, "error"),
    Input(menu, "n_clicks"),
    State(menu, "format"),
    State(menu, "preset"),
    State(menu, "spec"),
    prevent_initial_call=True,
)
def export_figure(ctx: WebContext, _clicks: int, fmt: str, preset: str, spec: dict | None) -> tuple:
    if not spec:
        return dash.no_update, "nothing to export yet"
    try:
        data = figure_bytes(build_figure(ctx.reader, spec), fmt, preset)
    except (ExportError, StoreError, ValueError, RuntimeError) as exc:
        log.warning("export %s failed: %s", spec, exc)
        return dash.no_update, str(exc)
    return dcc.send_bytes(data, f"{spec_name(spec)}_{preset}.{fmt}"), ""
