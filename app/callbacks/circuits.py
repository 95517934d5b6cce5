"""Circuits page: chosen runs + selection mode + slider → graphs, curves, edge table."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output

from app import ids
from app.callbacks.wiring import callback
from app.components.analysis_pages import circuit_cards, slider_scale
from app.components.common import data_table, empty_figure
from app.services import circuits
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.errors import StoreError

FAITH_SPEC = ids.export_id("circuits-faith")
ROC_SPEC = ids.export_id("circuits-roc")


def selection(mode: str, top_k: int | None, threshold: float | None) -> dict:
    if mode == "topk":
        return {"top_k": int(top_k or 1), "threshold": None}
    if mode == "threshold":
        return {"top_k": None, "threshold": float(threshold or 0.0)}
    return {"top_k": None, "threshold": None}


@callback(
    Output(ids.CIRCUITS_TOPK, "max"),
    Output(ids.CIRCUITS_THRESHOLD, "max"),
    Output(ids.CIRCUITS_THRESHOLD, "step"),
    Output(ids.CIRCUITS_THRESHOLD, "marks"),
    Input(ids.CIRCUITS_RUNS, "value"),
    prevent_initial_call=True,
)
def slider_limits(ctx: WebContext, run_ids: list[int] | None) -> tuple:
    n_edges, max_score = circuits.score_range(ctx.store, [int(r) for r in run_ids or []])
    top, marks = slider_scale(max_score)
    return max(n_edges, 1), top, top / 200, marks


@callback(
    Output(ids.CIRCUITS_GRAPHS, "children"),
    Output(ids.CIRCUITS_EDGES, "children"),
    Input(ids.CIRCUITS_RUNS, "value"),
    Input(ids.CIRCUITS_MODE, "value"),
    Input(ids.CIRCUITS_TOPK, "value"),
    Input(ids.CIRCUITS_THRESHOLD, "value"),
)
def show_circuits(
    ctx: WebContext, run_ids: list[int] | None, mode: str, top_k: int, threshold: float
) -> tuple:
    chosen = selection(mode, top_k, threshold)
    items: list[tuple[int, str, Any, dict[str, Any] | None]] = []
    for run_id in [int(r) for r in run_ids or []]:
        spec = {"kind": "circuit_graph", "run": run_id, **chosen}
        exportable: dict[str, Any] | None = spec
        try:
            figure = circuits.linked_graph(ctx.reader, run_id, page_figure(ctx.reader, spec))
        except (StoreError, ValueError) as exc:
            figure, exportable = empty_figure(str(exc)), None
        items.append((run_id, f"Circuit #{run_id}", figure, exportable))
    if not items:
        return [dash.html.P("No circuit runs yet: launch a `circuit` run.", className="muted")], ""
    rows = circuits.edge_rows(ctx.store, items[0][0], chosen["top_k"], chosen["threshold"])
    return circuit_cards(items), data_table(
        "circuit-edges-table", rows, ["source", "target", "score", "in_circuit"]
    )


@callback(
    Output(ids.CIRCUITS_FAITH, "figure"),
    Output(FAITH_SPEC, "spec"),
    Output(ids.CIRCUITS_ROC, "figure"),
    Output(ROC_SPEC, "spec"),
    Input(ids.CIRCUITS_RUNS, "value"),
)
def show_curves(ctx: WebContext, run_ids: list[int] | None) -> tuple:
    runs = [int(r) for r in run_ids or []]
    out: list = []
    for kind, key, what in (
        ("faithfulness", "faithfulness_curve", "faithfulness curve"),
        ("roc", "roc", "ROC (needs a ground truth)"),
    ):
        if not circuits.curves(ctx.store, runs, key):
            why = circuits.missing_ground_truths(ctx.store, runs) if kind == "roc" else []
            out += [empty_figure("<br>".join([f"The chosen runs store no {what}", *why])), None]
            continue
        spec = {"kind": kind, "runs": runs}
        out += [page_figure(ctx.reader, spec), spec]
    return tuple(out)
