"""Compare page: two runs + a shared metric → side-by-side and difference heatmaps."""

from __future__ import annotations

from dash import Input, Output, State

from app import ids
from app.callbacks.wiring import callback
from app.components.common import empty_figure
from app.services import compare
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.errors import StoreError

SWEEP_SPEC = ids.export_id("compare-sweep")
SIDE_SPEC = ids.export_id("compare-side")
DIFF_SPEC = ids.export_id("compare-diff")


@callback(
    Output(ids.COMPARE_METRIC, "options"),
    Output(ids.COMPARE_METRIC, "value"),
    Input(ids.COMPARE_RUN_A, "value"),
    Input(ids.COMPARE_RUN_B, "value"),
    State(ids.COMPARE_METRIC, "value"),
    prevent_initial_call=True,
)
def pick_runs(ctx: WebContext, a: int | None, b: int | None, metric: str | None) -> tuple:
    metrics, _ = compare.common_metrics(ctx, a, b)
    return metrics, metric if metric in metrics else (metrics[0] if metrics else None)


@callback(
    Output(ids.COMPARE_SIDE, "figure"),
    Output(SIDE_SPEC, "spec"),
    Output(ids.COMPARE_DIFF, "figure"),
    Output(DIFF_SPEC, "spec"),
    Output(ids.COMPARE_MESSAGE, "children"),
    Output(ids.COMPARE_MESSAGE, "className"),
    Input(ids.COMPARE_METRIC, "value"),
    State(ids.COMPARE_RUN_A, "value"),
    State(ids.COMPARE_RUN_B, "value"),
)
def show(ctx: WebContext, metric: str | None, a: int | None, b: int | None) -> tuple:
    _, note = compare.common_metrics(ctx, a, b)
    if not metric or a is None or b is None:
        blank = empty_figure(note or "Pick two runs and a metric")
        return blank, None, blank, None, note, "message warn" if note else "message empty"
    out: list = []
    for kind in ("compare_side", "compare_diff"):
        spec = {"kind": kind, "a": int(a), "b": int(b), "metric": metric}
        try:
            out += [page_figure(ctx.reader, spec), spec]
        except (StoreError, ValueError) as exc:
            out += [empty_figure(str(exc)), None]
    return (*out, note, "message warn" if note else "message empty")


@callback(
    Output(ids.COMPARE_SWEEP_GRID, "figure"),
    Output(SWEEP_SPEC, "spec"),
    Input(ids.COMPARE_SWEEP_METRIC, "value"),
    State(ids.COMPARE_SWEEP_ID, "data"),
)
def show_sweep(ctx: WebContext, metric: str | None, sweep_id: int | None) -> tuple:
    if sweep_id is None:
        return empty_figure("No sweep"), None
    try:
        runs = ctx.store.sweep_runs(int(sweep_id))  # the page listed the metrics already
        spec = compare.sweep_figure_spec(int(sweep_id), runs, metric)
        if spec is None:
            return empty_figure("No finished run of the sweep stores a per-head metric yet"), None
        return page_figure(ctx.reader, spec), spec
    except (StoreError, ValueError) as exc:
        return empty_figure(str(exc)), None
