"""Explore page: submit a text → follow its run → every head's panels; focus, token, overlay.

Each figure of the panels is drawn by its callback here when the panels enter the page (and
again on every change of its inputs); the thumbnails and tables come with the panels. The
submit enqueues (or reuses) an ``explore`` run and writes ``{run, reused}`` (or
``{error}``) to the page's run store; ``follow_run`` polls that run while it is queued or
running and draws its panels once it is finished. Hovering or clicking a thumbnail and
clicking a token are read in the browser (``assets/explore.js``) into the focus and token
stores; the callbacks below redraw the focused head's pattern, the shaded tokens and the
overlay from the run's stored patterns.
"""

from __future__ import annotations

import time
from typing import Any

import dash
from dash import Input, Output, State

from app import ids
from app.callbacks.wiring import callback
from app.components import explore as layout
from app.components.common import empty_figure
from app.components.explore import (
    dla_spec,
    figure_and_spec,
    lens_spec,
    overlay_spec,
    pattern_spec,
    result_panels,
)
from app.export.errors import ExportError
from app.services import explore
from app.services.context import WebContext
from storage.errors import StoreError
from storage.records import RunStatus

PATTERN_SPEC = ids.export_id(layout.PATTERN_FIGURE)
OVERLAY_SPEC = ids.export_id(layout.OVERLAY_FIGURE)
DLA_SPEC = ids.export_id(layout.DLA_FIGURE)


@callback(
    Output(ids.EXPLORE_RUN, "data"),
    Input(ids.EXPLORE_SUBMIT, "n_clicks"),
    State(ids.EXPLORE_TEXT, "value"),
    State(ids.EXPLORE_MODEL, "value"),
    State(ids.EXPLORE_NEXT, "value"),
    prevent_initial_call=True,
)
def submit(
    ctx: WebContext, _clicks: int, text: str | None, model: str | None, next_token: str | None
) -> dict[str, Any]:
    try:
        run, reused = explore.submit_from_page(ctx.store, model, text, next_token)
    except (explore.ExploreError, StoreError) as exc:
        return {"error": str(exc), "t": time.time()}
    return {"run": run.id, "reused": reused, "t": time.time()}


@callback(
    Output(ids.EXPLORE_TEXT, "value"),
    Output(ids.EXPLORE_STATUS, "children", allow_duplicate=True),
    Output(ids.EXPLORE_STATUS, "className", allow_duplicate=True),
    Input(ids.EXPLORE_SET, "value"),
    Input(ids.EXPLORE_SET_INDEX, "value"),
    prevent_initial_call=True,
)
def fill_prompt(ctx: WebContext, prompt_set: str | None, index: int | float | None) -> tuple:
    """A picked prompt of a set fills the text box (then Explore runs it like typed text)."""
    if not prompt_set:
        return dash.no_update, dash.no_update, dash.no_update
    try:
        text = explore.prompt_text(ctx.store, prompt_set, int(index or 0))
    except (explore.ExploreError, StoreError) as exc:
        return dash.no_update, str(exc), "message warn"
    return text, "", "message empty"


@callback(
    Output(ids.EXPLORE_RESULT, "children"),
    Output(ids.EXPLORE_STATUS, "children"),
    Output(ids.EXPLORE_STATUS, "className"),
    Output(ids.EXPLORE_POLL, "disabled"),
    Input(ids.EXPLORE_POLL, "n_intervals"),
    Input(ids.EXPLORE_RUN, "data"),
    prevent_initial_call=True,
)
def follow_run(ctx: WebContext, _ticks: int | None, data: dict[str, Any] | None) -> tuple:
    keep = dash.no_update
    if not data:
        return keep, "", "message empty", True
    if data.get("error"):
        return keep, str(data["error"]), "message warn", True
    run_id = int(data["run"])
    try:
        run = ctx.store.get_run(run_id)
    except StoreError as exc:
        return keep, str(exc), "message warn", True
    if run.status == RunStatus.FINISHED:
        try:
            panels = result_panels(ctx, run_id)
        except (ExportError, StoreError, ValueError) as exc:
            return keep, str(exc), "message warn", True
        took = f" in {run.elapsed_s:.2f} s" if run.elapsed_s is not None else ""
        how = "reused (same model, text and next token)" if data.get("reused") else f"ran{took}"
        note = f"Run #{run_id} {how}; {run.summary.get('n_tokens', '?')} tokens."
        return panels, note, "message info", True
    if run.status.is_terminal:
        reason = run.error or run.status.value
        return keep, f"Run #{run_id} {run.status.value}: {reason}", "message warn", True
    where = run.message or run.status.value
    return (
        keep,
        f"Run #{run_id} {run.status.value}: {where} ({run.progress:.0%})",
        "message info",
        False,
    )


def _head(focus: dict[str, Any] | None, n_layers: int, n_heads: int) -> tuple[int, int]:
    focus = focus or {}
    layer = min(max(int(focus.get("layer") or 0), 0), n_layers - 1)
    head = min(max(int(focus.get("head") or 0), 0), n_heads - 1)
    return layer, head


def _pos(token: dict[str, Any] | None, n: int) -> int:
    pos = (token or {}).get("pos")
    return n - 1 if pos is None else min(max(int(pos), 0), n - 1)


@callback(
    Output(ids.EXPLORE_PATTERN, "figure"),
    Output(PATTERN_SPEC, "spec"),
    Output(ids.EXPLORE_FOCUS_TITLE, "children"),
    Output(ids.EXPLORE_TOKENS, "children"),
    Input(ids.EXPLORE_FOCUS, "data"),
    Input(ids.EXPLORE_TOKEN, "data"),
    Input(ids.EXPLORE_DIRECTION, "value"),
    State(ids.EXPLORE_SHOWN, "data"),
)
def show_focus(
    ctx: WebContext,
    focus: dict[str, Any] | None,
    token: dict[str, Any] | None,
    direction: str | None,
    run_id: int | None,
) -> tuple:
    if run_id is None:
        return dash.no_update, dash.no_update, dash.no_update, dash.no_update
    try:
        found = explore.view(ctx.reader, int(run_id))
    except (ExportError, StoreError) as exc:
        return empty_figure(str(exc)), None, "Head", []
    layer, head = _head(focus, found.n_layers, found.n_heads)
    pos = _pos(token, len(found.tokens))
    direction = "to" if direction == "to" else "from"
    figure, spec = figure_and_spec(ctx, pattern_spec(found.run, layer, head))
    shading = explore.token_shading(found, layer, head, pos, direction)
    locked = " (locked)" if (focus or {}).get("locked") else ""
    title = f"Head {layer}.{head}{locked}"
    return figure, spec, title, layout.token_spans(found.tokens, shading, pos)


@callback(
    Output(ids.EXPLORE_OVERLAY, "figure"),
    Output(OVERLAY_SPEC, "spec"),
    Input(ids.EXPLORE_OVERLAY_HEADS, "value"),
    Input(ids.EXPLORE_TOKEN, "data"),
    Input(ids.EXPLORE_DIRECTION, "value"),
    State(ids.EXPLORE_SHOWN, "data"),
)
def show_overlay(
    ctx: WebContext,
    heads: list[str] | None,
    token: dict[str, Any] | None,
    direction: str | None,
    run_id: int | None,
) -> tuple:
    if run_id is None:
        return dash.no_update, dash.no_update
    if not heads:
        return empty_figure("Pick heads to overlay"), None
    try:
        found = explore.view(ctx.reader, int(run_id))
    except (ExportError, StoreError) as exc:
        return empty_figure(str(exc)), None
    pos = _pos(token, len(found.tokens))
    direction = "to" if direction == "to" else "from"
    return figure_and_spec(ctx, overlay_spec(found.run, list(heads), pos, direction))


@callback(
    Output(ids.EXPLORE_DLA, "figure"),
    Output(DLA_SPEC, "spec"),
    Input(ids.EXPLORE_DLA_TARGET, "value"),
    State(ids.EXPLORE_SHOWN, "data"),
)
def show_dla(ctx: WebContext, role: str | None, run_id: int | None) -> tuple:
    if run_id is None:
        return dash.no_update, dash.no_update
    return figure_and_spec(ctx, dla_spec(int(run_id), "next" if role == "next" else "top"))


@callback(
    Output(ids.EXPLORE_LENS, "figure"),
    Input(ids.EXPLORE_SHOWN, "data"),
)
def show_lens(ctx: WebContext, run_id: int | None) -> Any:
    if run_id is None:
        return dash.no_update
    return figure_and_spec(ctx, lens_spec(int(run_id)))[0]
