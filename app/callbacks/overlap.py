"""Circuit overlap page: chosen circuit runs + level → membership grid, pairwise matrix, tables."""

from __future__ import annotations

from typing import Any

from dash import Input, Output

from app import ids
from app.callbacks.wiring import callback
from app.components import overlap as layout
from app.components.common import empty_figure
from app.services import overlap
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.errors import StoreError

GRID_SPEC = ids.export_id(layout.GRID_FIGURE)
MATRIX_SPEC = ids.export_id(layout.MATRIX_FIGURE)


@callback(
    Output(ids.OVERLAP_GRID, "figure"),
    Output(GRID_SPEC, "spec"),
    Output(ids.OVERLAP_MATRIX, "figure"),
    Output(MATRIX_SPEC, "spec"),
    Output(ids.OVERLAP_MESSAGE, "children"),
    Output(ids.OVERLAP_MESSAGE, "className"),
    Output(ids.OVERLAP_PAIRS, "children"),
    Output(ids.OVERLAP_EDGES, "children"),
    Output(ids.OVERLAP_TRUTH, "children"),
    Input(ids.OVERLAP_RUNS, "value"),
    Input(ids.OVERLAP_LEVEL, "value"),
)
def show_overlap(ctx: WebContext, run_ids: list[int] | None, level: str | None) -> tuple:
    runs = [int(r) for r in run_ids or []]
    level = level if level in ("heads", "nodes") else "heads"
    try:
        found = overlap.circuit_overlap(ctx.store, runs)
    except (overlap.OverlapError, StoreError) as exc:
        blank = empty_figure("Pick two or more finished circuit runs of one model")
        return blank, None, blank, None, str(exc), "message warn", "", "", ""
    out: list[Any] = []
    specs = (
        {"kind": "circuit_overlap", "runs": runs},
        {"kind": "overlap_matrix", "runs": runs, "level": level},
    )
    for spec in specs:
        try:
            out += [page_figure(ctx.reader, spec), spec]
        except (StoreError, ValueError) as exc:
            out += [empty_figure(str(exc)), None]
    pairs = [row for row in found.pair_rows() if row["level"] == level]
    return (
        *out,
        "",
        "message empty",
        layout.pair_table(pairs),
        layout.edge_table(found.shared_edges()),
        layout.truth_table(found.truth_rows()),
    )
