"""Circuits, SAEs and Compare page layouts."""

from __future__ import annotations

import math
from typing import Any

from dash import dcc, html

from app import ids
from app.components.common import (
    card,
    data_table,
    export_menu,
    figure_card,
    graph,
    message,
    page,
)
from app.components.overlap import overlap_link


def slider_scale(largest: float, n_marks: int = 4) -> tuple[float, dict[float, str]]:
    """A slider's top — ``largest`` rounded up to a round number (1, 2 or 5 × 10^k steps) — and
    marks at round values with short labels (never ``1.96257054801``)."""
    if not math.isfinite(largest) or largest <= 0:
        return 1.0, {0.0: "0", 1.0: "1"}
    raw = largest / n_marks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    top = step * math.ceil(largest / step - 1e-9)
    count = round(top / step)
    marks = {round(i * step, 12): f"{i * step:.4g}" for i in range(count + 1)}
    return round(top, 12), marks


# why the Circuits page has no position-resolved view
POSITION_NOTE = (
    "Per-position circuits: no position-resolved view, because these methods store no "
    "per-position scores (EAP and EAP-IG sum each edge's attribution over prompts and "
    "positions; ACDC and exact patching patch an edge at every position at once)."
)


def circuits_layout(
    run_options: list[dict[str, Any]], chosen: list[int], n_edges: int, max_score: float
) -> html.Div:
    top = max(n_edges, 1)
    controls = html.Div(
        [
            html.Label("Circuits", className="field-label"),
            dcc.Dropdown(
                id=ids.CIRCUITS_RUNS,
                options=run_options,
                value=chosen,
                multi=True,
                placeholder="choose one or more circuit runs",
                className="grow",
            ),
            dcc.RadioItems(
                id=ids.CIRCUITS_MODE,
                value="circuit",
                inline=True,
                options=[
                    {"label": " stored circuit", "value": "circuit"},
                    {"label": " top-k edges", "value": "topk"},
                    {"label": " |score| ≥ threshold", "value": "threshold"},
                ],
                className="radio",
            ),
        ],
        className="toolbar",
    )
    threshold_top, threshold_marks = slider_scale(max_score)
    sliders = html.Div(
        [
            html.Div(
                [
                    html.Label("top k", className="field-label"),
                    dcc.Slider(
                        id=ids.CIRCUITS_TOPK,
                        min=1,
                        max=top,
                        step=1,
                        value=min(20, top),
                        updatemode="drag",
                        tooltip={"placement": "bottom", "always_visible": False},
                    ),
                ],
                className="slider",
            ),
            html.Div(
                [
                    html.Label("threshold", className="field-label"),
                    dcc.Slider(
                        id=ids.CIRCUITS_THRESHOLD,
                        min=0,
                        max=threshold_top,
                        step=threshold_top / 200,
                        marks=threshold_marks,
                        value=max_score / 4,
                        updatemode="drag",
                        tooltip={"placement": "bottom", "always_visible": False},
                    ),
                ],
                className="slider",
            ),
        ],
        className="sliders",
    )
    curves = html.Div(
        [
            figure_card(
                "Faithfulness vs circuit size", ids.CIRCUITS_FAITH, "circuits-faith", height=340
            ),
            figure_card(
                "ROC against the ground truth", ids.CIRCUITS_ROC, "circuits-roc", height=340
            ),
        ],
        className="two-col even",
    )
    return page(
        "Circuits",
        card(None, controls, sliders, overlap_link(chosen if len(chosen) > 1 else [])),
        html.Div(id=ids.CIRCUITS_GRAPHS, className="graph-grid"),
        html.P(POSITION_NOTE, className="hint", id="circuits-position-note"),
        curves,
        card(
            "Selected edges (first circuit)",
            html.Div(id=ids.CIRCUITS_EDGES, className="table-wrap"),
        ),
        subtitle="Layers run top to bottom; edge width shows |score|; q, k and v inputs have "
        "their own colours. Hover an edge's midpoint for its score and rank; click a head to "
        "open it on the Heads page. Moving a slider re-selects stored edges, nothing reruns.",
    )


def circuit_cards(items: list[tuple[int, str, Any, dict[str, Any] | None]]) -> list[html.Div]:
    """(run id, title, figure, spec) → one graph card per circuit."""
    return [
        figure_card(
            title,
            f"circuit-graph-{run_id}",
            f"circuit-{run_id}",
            figure=figure,
            spec=spec,
            height=460,
            class_name="circuit-card",
        )
        for run_id, title, figure, spec in items
    ]


def sae_layout(
    run_options: list[dict[str, Any]],
    run_id: int | None,
    feature_rows: list[dict],
    training: Any,
    training_spec: Any,
    note: str,
) -> html.Div:
    table = data_table(
        ids.SAE_FEATURES,
        feature_rows,
        None,
        page_size=12,
        filterable=True,
        row_selectable="single",
        selected_rows=[],
    )
    return page(
        "SAEs",
        html.Div(
            [
                html.Label("SAE run", className="field-label"),
                dcc.Dropdown(
                    id=ids.SAE_RUN,
                    options=run_options,
                    value=run_id,
                    clearable=False,
                    className="grow",
                ),
            ],
            className="toolbar",
        ),
        message(note or None, id=ids.SAE_MESSAGE),
        html.Div(
            [
                card(
                    "Features (sort by any column; pick one)",
                    html.Div(table, className="table-wrap"),
                ),
                figure_card(
                    "Training curves",
                    ids.SAE_TRAINING,
                    "sae-training",
                    figure=training,
                    spec=training_spec,
                    height=360,
                ),
            ],
            className="two-col",
        ),
        html.Div(
            [
                figure_card("Per-head attribution", ids.SAE_SHARES, "sae-shares", height=340),
                card(
                    "Top-activating contexts",
                    html.Div(id=ids.SAE_CONTEXTS, className="contexts"),
                    extra=export_menu("sae-contexts"),
                ),
            ],
            className="two-col even",
        ),
        figure_card(
            "Direct feature attribution by source position", ids.SAE_DFA, "sae-dfa", height=360
        ),
        dcc.Store(id=ids.SAE_FEATURE),
    )


def compare_layout(
    run_options: list[dict[str, Any]],
    a: int | None,
    b: int | None,
    metrics: list[str],
    metric: str | None,
    prompt_options: list[dict[str, Any]] | None = None,
) -> html.Div:
    """Two runs of one kind (one model, or two models of one shape): their heads that moved
    most, the selected mover's attention in both, both grids and their difference."""
    pickers = html.Div(
        [
            html.Label("Run A", className="field-label"),
            dcc.Dropdown(id=ids.COMPARE_RUN_A, options=run_options, value=a, className="grow"),
            html.Label("Run B", className="field-label"),
            dcc.Dropdown(id=ids.COMPARE_RUN_B, options=run_options, value=b, className="grow"),
            html.Label("Metric", className="field-label"),
            dcc.Dropdown(
                id=ids.COMPARE_METRIC, options=metrics, value=metric, className="metric-select"
            ),
        ],
        className="toolbar",
    )
    return page(
        "Compare",
        pickers,
        message(None, id=ids.COMPARE_MESSAGE),
        html.Div(
            [
                _movers_card(),
                figure_card(
                    "Δ of the heads that moved most", ids.COMPARE_MOVERS_CHART, "compare-movers"
                ),
            ],
            className="two-col even",
        ),
        _mover_patterns_card(prompt_options or []),
        figure_card(
            "Side by side (shared colour scale)", ids.COMPARE_SIDE, "compare-side", height=440
        ),
        figure_card("Difference (B − A)", ids.COMPARE_DIFF, "compare-diff", height=440),
        subtitle="Two runs of the same kind — one model on two prompt sets, or two models of "
        "the same layer × head shape (two checkpoints, a base and a fine-tuned model).",
    )


def _movers_card() -> html.Div:
    table = data_table(
        ids.COMPARE_MOVERS, [], ["head", "A", "B", "Δ (B − A)", "rank in A", "rank in B"]
    )
    return card(
        "Heads that moved most",
        table,
        html.P(
            "|B − A| largest first; rank = place by |value| in that run. Click a row to see "
            "the head's attention in both runs.",
            className="hint",
        ),
    )


def _mover_patterns_card(prompt_options: list[dict[str, Any]]) -> html.Div:
    prompt = prompt_options[0]["value"] if prompt_options else None
    patterns = [
        html.Div(
            [
                html.Div([html.H3(title), export_menu(name)], className="card-head"),
                graph(graph_id, height=460),
            ]
        )
        for title, graph_id, name in (
            ("A", ids.COMPARE_PATTERN_A, "compare-pattern-a"),
            ("B", ids.COMPARE_PATTERN_B, "compare-pattern-b"),
        )
    ]
    return card(
        None,
        html.Div([html.H2("Select a mover", id=ids.COMPARE_MOVER_TITLE)], className="card-head"),
        html.Div(
            [
                html.Label("Prompt", className="field-label"),
                dcc.Dropdown(
                    id=ids.COMPARE_PROMPT,
                    options=prompt_options,
                    value=prompt,
                    clearable=False,
                    className="grow",
                ),
            ],
            className="toolbar compact",
        ),
        html.Div(patterns, className="two-col even"),
        class_name="detail-card",
    )


def compare_sweep_layout(
    sweep: Any, rows: list[dict[str, Any]], metrics: list[str], metric: str | None
) -> html.Div:
    """Every run of a sweep: its table (what varies, status, scalar results) and one metric's
    head grid per finished run, on one colour scale."""
    ended = f"{sweep.n_ended}/{sweep.n_runs} runs ended"
    picker = html.Div(
        [
            html.Label("Metric", className="field-label"),
            dcc.Dropdown(
                id=ids.COMPARE_SWEEP_METRIC,
                options=metrics,
                value=metric,
                className="metric-select",
                placeholder="no metric shared by the finished runs yet",
            ),
            dcc.Link("Compare two runs instead", href="/compare", className="btn small"),
        ],
        className="toolbar",
    )
    return page(
        f"Compare sweep {sweep.name}",
        dcc.Store(id=ids.COMPARE_SWEEP_ID, data=sweep.id),
        picker,
        figure_card(
            "Each run of the sweep (shared colour scale)",
            ids.COMPARE_SWEEP_GRID,
            "compare-sweep",
            height=520,
        ),
        card(f"Runs ({ended})", data_table(ids.COMPARE_SWEEP_TABLE, rows, page_size=25)),
        subtitle=f"{sweep.kind} over {_sweep_axes(sweep.spec)}.",
    )


def _sweep_axes(spec: dict[str, Any]) -> str:
    parts = [f"{len(spec.get('models', []))} model(s)"]
    if spec.get("prompt_sets"):
        parts.append(f"{len(spec['prompt_sets'])} prompt set(s)")
    parts += [f"{key} ∈ {{{', '.join(map(str, v))}}}" for key, v in spec.get("vary", {}).items()]
    return " × ".join(parts)
