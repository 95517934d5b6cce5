"""The Circuit overlap page's layout: a run picker, the heads' membership grid, the pairwise
matrix, and tables of pairs, shared edges and each circuit against its ground truth."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from app import ids
from app.components.common import card, data_table, figure_card, message, page
from storage.errors import StoreError

GRID_FIGURE = "circuit-overlap"  # export menu names, as `headlab export figure --kind`
MATRIX_FIGURE = "overlap-matrix"
PAIR_COLUMNS = ["of", "level", "a", "b", "n_a", "n_b", "shared", "union", "jaccard", "overlap"]


def overlap_layout(run_options: list[dict[str, Any]], chosen: list[int]) -> html.Div:
    controls = html.Div(
        [
            html.Label("Circuit runs", className="field-label"),
            dcc.Dropdown(
                id=ids.OVERLAP_RUNS,
                options=run_options,
                value=chosen,
                multi=True,
                placeholder="choose two or more circuit runs of one model",
                className="grow",
            ),
            dcc.RadioItems(
                id=ids.OVERLAP_LEVEL,
                value="heads",
                inline=True,
                options=[
                    {"label": " heads", "value": "heads"},
                    {"label": " heads + MLPs", "value": "nodes"},
                ],
                className="radio",
            ),
        ],
        className="toolbar",
    )
    return page(
        "Circuit overlap",
        card(None, controls),
        message(None, id=ids.OVERLAP_MESSAGE),
        html.Div(
            [
                figure_card(
                    "Heads across circuits",
                    ids.OVERLAP_GRID,
                    GRID_FIGURE,
                    height=460,
                    spec={"kind": "circuit_overlap", "runs": chosen},
                ),
                figure_card(
                    "Pairwise overlap",
                    ids.OVERLAP_MATRIX,
                    MATRIX_FIGURE,
                    height=460,
                    spec={"kind": "overlap_matrix", "runs": chosen, "level": "heads"},
                ),
            ],
            className="two-col even",
        ),
        card("Pairs", html.Div(id=ids.OVERLAP_PAIRS, className="table-wrap")),
        card("Edges in every circuit", html.Div(id=ids.OVERLAP_EDGES, className="table-wrap")),
        card("Each circuit against its task's ground truth", html.Div(id=ids.OVERLAP_TRUTH)),
        subtitle="Circuits of one model found on different tasks: which heads they share "
        "(Jaccard |A∩B|/|A∪B| and overlap coefficient |A∩B|/min(|A|,|B|)), which are "
        "task-specific, and the edges every circuit keeps.",
    )


def pair_table(rows: list[dict[str, Any]]) -> Any:
    return data_table("overlap-pairs-table", rows, PAIR_COLUMNS, page_size=20)


def edge_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return html.P("No edge is in every circuit.", className="muted")
    return data_table("overlap-edges-table", rows)


def truth_table(rows: list[dict[str, Any]]) -> Any:
    columns = ["run", "ground_truth", "heads jaccard", "heads overlap", "heads found/true",
               "nodes jaccard", "nodes overlap", "nodes found/true"]  # fmt: skip
    found = [r for r in rows if not r.get("reason")]
    notes = [html.P(f"{r['run']}: no ground truth: {r['reason']}", className="muted") for r in rows
             if r.get("reason")]  # fmt: skip
    table = [data_table("overlap-truth-table", found, columns)] if found else []
    return html.Div([*table, *notes])


def overlap_href(run_ids: list[int]) -> str:
    return "/overlap?runs=" + ",".join(str(r) for r in run_ids) if run_ids else "/overlap"


def overlap_link(run_ids: list[int], text: str = "Compare circuits across tasks →") -> html.P:
    """A link to the Circuit overlap page with these runs chosen."""
    return html.P(dcc.Link(text, href=overlap_href(run_ids)), className="overlap-link")


def with_circuit_overlap_link(ctx: Any, layout: html.Div, a: int | None, b: int | None) -> Any:
    """``layout`` (the Compare page) with a link to the overlap of runs ``a`` and ``b`` placed
    after its header, when both are circuit runs; else ``layout`` as it is."""
    from app.services.overlap import KIND

    if a is None or b is None or a == b:
        return layout
    try:
        kinds = {ctx.store.get_run(int(a)).kind, ctx.store.get_run(int(b)).kind}
    except StoreError:  # a run gone meanwhile: no link
        return layout
    if kinds != {KIND}:
        return layout
    children = list(layout.children)
    layout.children = [children[0], overlap_link([int(a), int(b)]), *children[1:]]
    return layout
