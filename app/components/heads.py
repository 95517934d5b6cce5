"""Heads page layout: run and metric pickers, the layer × head heatmap, the head detail panel
(pattern on a chosen prompt, a taxonomy run's figures of the head, scores across runs, top SAE
features), a taxonomy run's run-level figures and per-position results."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from app import ids
from app.components.common import (
    card,
    data_table,
    empty_figure,
    export_menu,
    graph,
    message,
    page,
)
from app.components.native import PlotlyFigure
from app.services.heads_view import FigureView, HeadsInitial, PositionView

SCORE_COLUMNS = ["run", "metric", "value", "rank"]
PATTERN_HEIGHT, POSITION_HEIGHT = 380, 360
HEAD_FIGURE_HEIGHT, RUN_FIGURE_HEIGHT = 300, 380


def scores_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return html.P("No scores for this head.", className="muted")
    return data_table("heads-scores-table", rows, SCORE_COLUMNS, page_size=12)


def sae_list(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return html.P(
            "No SAE run on this model attributes features to this head.", className="muted"
        )
    items = [
        html.Li(
            dcc.Link(
                f"feature {r['feature']} · share {r['share']:.2f}",
                href=f"/sae?run={r['run']}&feature={r['feature']}",
            )
        )
        for r in rows
    ]
    return html.Ul(items, className="feature-list")


def figure_or_note(graph_id: str, figure: Any, note: str, height: int) -> Any:
    """A graph of ``figure``, or (no figure) the note in a box of the graph's height: an empty
    plotly figure still costs a full plot in the browser (tens of ms on every page load)."""
    if figure is None:
        return html.Div(note, className="figure-note", style={"height": f"{height}px"})
    return graph(graph_id, figure, height=height)


def pattern_content(figure: Any, note: str = "Click a head in the heatmap") -> Any:
    return figure_or_note(ids.HEADS_PATTERN, figure, note, PATTERN_HEIGHT)


def position_content(view: PositionView) -> Any:
    return figure_or_note(ids.HEADS_POSITION, view.figure, view.message, POSITION_HEIGHT)


WIDE_FIGURES = ("kv_curve", "pruning_curve")  # one panel per metric: a row of its own


def figure_block(view: FigureView, prefix: str, height: int) -> html.Div:
    """One titled figure with its export menu (named ``<prefix>-<kind>``), or its message."""
    wide = {"gridColumn": "1 / -1"} if view.name in WIDE_FIGURES else {}
    return html.Div(
        [
            html.Div(
                [html.H3(view.title), export_menu(f"{prefix}-{view.name}", view.spec)],
                className="card-head",
            ),
            figure_or_note(f"{prefix}-graph-{view.name}", view.figure, view.message, height),
        ],
        className="figure-block",
        style=wide,
        **{"data-figure": view.name},  # type: ignore[arg-type]
    )


# a lens run's token tables (a row per token or position) need more room than a curve
TALL_HEAD_FIGURES = {"ov_lens": 420, "logit_lens_tokens": 560, "trained_lens_tokens": 560}


def head_figures(views: list[FigureView]) -> list[Any]:
    """A taxonomy or lens run's figures of the selected head (nothing for other runs)."""
    return [
        figure_block(v, "heads-head", TALL_HEAD_FIGURES.get(v.name, HEAD_FIGURE_HEIGHT))
        for v in views
    ]


def run_figures(views: list[FigureView]) -> Any:
    """A taxonomy run's run-level figures in a card below the grid (nothing for other runs)."""
    if not views:
        return None
    return card(
        "Run figures",
        html.Div(
            [figure_block(v, "heads-run", RUN_FIGURE_HEIGHT) for v in views],
            style={
                "display": "grid",
                "gridTemplateColumns": "repeat(auto-fit, minmax(360px, 1fr))",
                "gap": "16px",
            },
        ),
    )


def heatmap_graph(state: HeadsInitial) -> PlotlyFigure:
    """The layer × head heatmap (clicks and arrow keys: ``assets/keys.js``)."""
    # a double click would reset the (fixed) axes and redraw 80 × 64 cells, swallowing the
    # clicks that land meanwhile: quick head-to-head clicks must each select a head
    return graph(
        ids.HEADS_HEATMAP,
        state.figure or empty_figure(state.message),
        height=560,
        config={"doubleClick": False},
    )


def position_card(state: HeadsInitial) -> html.Div:
    view = state.position or PositionView()
    return card(
        "Per position",
        html.Div(
            [
                html.Label("Metric", className="field-label"),
                dcc.Dropdown(
                    id=ids.HEADS_POSITION_METRIC,
                    options=state.position_options,
                    value=state.position_choice,
                    placeholder="none on this model and prompt set",
                    className="grow",
                ),
            ],
            className="toolbar compact",
        ),
        html.Div(position_content(view), id=ids.HEADS_POSITION_BOX),
        extra=export_menu("heads-position", view.spec),
    )


def heads_layout(state: HeadsInitial) -> html.Div:
    toolbar = html.Div(
        [
            html.Label("Run", className="field-label"),
            dcc.Dropdown(
                id=ids.HEADS_RUN,
                options=state.run_options,
                value=state.run_id,
                clearable=False,
                className="grow",
            ),
            html.Label("Metric", className="field-label"),
            dcc.Dropdown(
                id=ids.HEADS_METRIC,
                options=state.metric_options,
                value=state.metric,
                clearable=False,
                className="metric-select",
            ),
        ],
        className="toolbar",
    )
    heatmap = card(
        "Layer × head",
        heatmap_graph(state),
        html.P("Click a head, or select one and move with the arrow keys.", className="hint"),
        extra=export_menu("heads-heatmap", state.spec),
        class_name="heatmap-card",
    )
    detail = card(
        None,
        html.Div(
            [html.H2("Select a head", id=ids.HEADS_DETAIL_TITLE), export_menu("heads-pattern")],
            className="card-head",
        ),
        html.Div(
            [
                html.Label("Prompt", className="field-label"),
                dcc.Dropdown(
                    id=ids.HEADS_PROMPT,
                    options=state.prompt_options,
                    value=state.prompt,
                    clearable=False,
                    className="grow",
                ),
            ],
            className="toolbar compact",
        ),
        html.Div(pattern_content(None), id=ids.HEADS_PATTERN_BOX),
        html.Div(id=ids.HEADS_HEAD_FIGURES),
        html.H3("Scores"),
        html.Div(id=ids.HEADS_SCORES),
        html.H3("Top SAE features"),
        html.Div(id=ids.HEADS_SAE),
        class_name="detail-card",
    )
    position = position_card(state)
    return page(
        "Heads",
        toolbar,
        message(None, id=ids.HEADS_MESSAGE),
        html.Div([heatmap, detail], className="two-col"),
        html.Div(run_figures(state.run_figures), id=ids.HEADS_RUN_FIGURES),
        position,
        dcc.Store(id=ids.HEADS_SELECTED),
    )
