"""Home, Models and Prompt sets layouts: what is in the store, adding models and prompt sets."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from app import ids
from app.components.common import card, data_table, graph, message, page


def stat(label: str, value: int, href: str) -> dcc.Link:
    return dcc.Link(
        [html.Div(str(value), className="stat-value"), html.Div(label, className="stat-label")],
        href=href,
        className="stat",
    )


def home_layout(
    counts: dict[str, int],
    recent: list[dict[str, Any]],
    heatmap: Any,
    heatmap_href: str | None,
    heatmap_title: str,
) -> html.Div:
    stats = html.Div(
        [
            stat("models", counts["models"], "/models"),
            stat("prompt sets", counts["prompt_sets"], "/prompts"),
            stat("runs", counts["runs"], "/runs"),
            stat("active runs", counts["active"], "/runs"),
        ],
        className="stats",
    )
    runs = [
        html.Li(
            [
                dcc.Link(f"#{r['id']} {r['kind']}", href=r["href"]),
                html.Span(f" {r['model']} ", className="mono"),
                html.Span(r["status"], className=f"badge {r['status'].lower()}"),
            ]
        )
        for r in recent
    ]
    recent_card = card(
        "Recent runs",
        html.Ul(runs, className="run-list")
        if runs
        else html.P("No runs yet. Start one on the Launch page.", className="muted"),
        dcc.Link("All runs →", href="/runs"),
    )
    if heatmap is None:
        heads_card = card(
            "Heads",
            html.P("No finished run with per-head results yet.", className="muted"),
            dcc.Link("Launch a run →", href="/launch"),
        )
    else:
        heads_card = card(
            heatmap_title,
            graph("home-heatmap", heatmap, height=420),
            dcc.Link("Open in Heads →", href=heatmap_href or "/heads"),
        )
    return page(
        "headlab",
        stats,
        html.Div([heads_card, recent_card], className="two-col"),
        subtitle="A workbench for attention heads: what each head attends to, which "
        "heads matter, how they form circuits, and what features they carry.",
    )


def models_layout(rows: list[dict[str, Any]]) -> html.Div:
    form = html.Div(
        [
            dcc.Input(
                id=ids.MODEL_NAME,
                placeholder="name, e.g. induction",
                className="input",
                style={"flex": "0 0 240px", "width": "240px"},
            ),
            dcc.Input(
                id=ids.MODEL_SPEC,
                placeholder="spec, e.g. zoo:induction-2l or hf:/path",
                className="input grow",
                style={"flex": "1 1 360px"},
            ),
            html.Button("Add model", id=ids.MODEL_ADD, className="btn"),
        ],
        className="toolbar",
    )
    return page(
        "Models",
        card("Add a model", form, message(None, id=ids.MODEL_ADD_STATUS)),
        card(
            "Stored models",
            html.Div(
                data_table(ids.MODELS_TABLE, rows, ["name", "spec", "facts", "created"]),
                className="table-wrap",
            ),
        ),
        subtitle="Model specs: zoo:<name> (the built-in zoo) or hf:<hub id or local folder>.",
    )


def upload_errors(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return ""
    return data_table(
        "prompts-errors-table",
        rows,
        ["row", "column", "error"],
        page_size=10,
        style_data={"color": "#a01c1c"},
    )


def prompts_layout(rows: list[dict[str, Any]], set_options: list[dict[str, Any]]) -> html.Div:
    upload = html.Div(
        [
            dcc.Input(
                id=ids.PROMPTS_UPLOAD_NAME,
                placeholder="name for the new set",
                className="input",
                style={"flex": "0 0 280px", "width": "280px"},
            ),
            dcc.Upload(
                id=ids.PROMPTS_UPLOAD,
                children=html.Div(
                    ["Drop a .csv / .jsonl / .json file here or ", html.A("choose one")]
                ),
                className="upload",
                multiple=False,
            ),
        ],
        className="toolbar",
    )
    return page(
        "Prompt sets",
        card(
            "Import a prompt file",
            upload,
            html.P(
                "Columns: clean, corrupted, correct, incorrect (optional correct_id, "
                "incorrect_id; other columns are kept as metadata).",
                className="hint",
            ),
            message(None, id=ids.PROMPTS_UPLOAD_STATUS),
            html.Div(id=ids.PROMPTS_UPLOAD_ERRORS),
        ),
        card(
            "Stored prompt sets",
            html.Div(
                data_table(
                    ids.PROMPTS_TABLE,
                    rows,
                    ["id", "name", "pairs", "source", "model", "hash", "created"],
                ),
                className="table-wrap",
            ),
        ),
        card(
            "Pairs",
            dcc.Dropdown(
                id=ids.PROMPTS_PREVIEW_SET,
                options=set_options,
                placeholder="choose a prompt set to see its pairs",
            ),
            html.Div(id=ids.PROMPTS_PREVIEW, className="table-wrap"),
        ),
        subtitle="A prompt pair is a clean prompt, a corrupted prompt and two answer tokens.",
    )


def pairs_table(rows: list[dict[str, Any]]) -> Any:
    return data_table(
        "prompts-pairs-table",
        rows,
        ["index", "clean", "corrupted", "correct", "incorrect"],
        page_size=10,
    )
