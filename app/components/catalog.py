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


def _poll(store_id: str, interval_id: str) -> list[Any]:
    """A store holding the id of the run the page waits for, and the interval that polls it."""
    return [dcc.Store(id=store_id), dcc.Interval(id=interval_id, interval=700, disabled=True)]


MODEL_COLUMNS = ["name", "spec", "layers", "heads", "kv_heads", "d_model", "d_head", "vocab",
                 "context", "created"]  # fmt: skip


def models_layout(rows: list[dict[str, Any]]) -> html.Div:
    form = html.Div(
        [
            dcc.Input(
                id=ids.MODEL_NAME,
                placeholder="name (default: from the spec)",
                className="input",
                style={"flex": "0 0 240px", "width": "240px"},
            ),
            dcc.Input(
                id=ids.MODEL_SPEC,
                placeholder="spec, e.g. zoo:induction-2l or hf:/path/to/folder",
                className="input grow",
                style={"flex": "1 1 360px"},
            ),
            dcc.Checklist(
                id=ids.MODEL_REPLACE,
                options=[{"label": " replace a model of the same name", "value": "replace"}],
                value=[],
                className="field-label",
            ),
            html.Button("Add model", id=ids.MODEL_ADD, className="btn"),
        ],
        className="toolbar",
    )
    return page(
        "Models",
        card(
            "Add a model",
            form,
            html.P(
                "A worker loads the model to check it and measures its architecture facts; "
                "they appear here when its run finishes.",
                className="hint",
            ),
            message(None, id=ids.MODEL_ADD_STATUS),
            html.Div(id=ids.MODEL_FACTS, className="facts"),
            *_poll(ids.MODEL_RUN, ids.MODEL_POLL),
        ),
        card(
            "Stored models",
            html.Div(data_table(ids.MODELS_TABLE, rows, MODEL_COLUMNS), className="table-wrap"),
        ),
        subtitle="Model specs: zoo:<name> (the built-in zoo) or hf:<hub id or local folder>.",
    )


def facts_grid(rows: list[dict[str, Any]]) -> html.Div:
    """A model's architecture facts as a compact grid of name / value pairs."""
    return html.Div(
        [
            html.Div(
                [
                    html.Span(r["fact"], className="fact-key"),
                    html.Span(r["value"] or "—", className="fact-value"),
                ],
                className="fact",
            )
            for r in rows
        ],
        className="facts-grid",
    )


def upload_errors(rows: list[dict[str, Any]]) -> Any:
    """Structural problems of an upload: row, column, message."""
    if not rows:
        return ""
    return data_table(
        "prompts-errors-table",
        rows,
        ["row", "column", "error"],
        page_size=10,
        style_data={"color": "#a01c1c"},
    )


def token_errors(rows: list[dict[str, Any]]) -> Any:
    """Token-level problems found by the worker: each offending row's cells next to its error."""
    if not rows:
        return ""
    return data_table(
        "prompts-token-errors-table",
        rows,
        ["row", "clean", "corrupted", "correct", "incorrect", "error"],
        page_size=10,
        style_data_conditional=[{"if": {"column_id": "error"}, "color": "#a01c1c"}],
        style_cell_conditional=[{"if": {"column_id": "error"}, "maxWidth": "520px",
                                 "whiteSpace": "normal"}],
    )  # fmt: skip


def _model_picker(picker_id: str, model_options: list[str], width: int) -> dcc.Dropdown:
    return dcc.Dropdown(
        id=picker_id,
        options=model_options,
        value=model_options[0] if model_options else None,
        placeholder="model (add one on the Models page)",
        clearable=False,
        style={"flex": f"0 0 {width}px", "width": f"{width}px"},
    )


def _import_card(model_options: list[str]) -> html.Div:
    upload = html.Div(
        [
            dcc.Input(
                id=ids.PROMPTS_UPLOAD_NAME,
                placeholder="name (default: the file name)",
                className="input",
                style={"flex": "0 0 240px", "width": "240px"},
            ),
            _model_picker(ids.PROMPTS_UPLOAD_MODEL, model_options, 260),
            html.Div(
                dcc.Upload(
                    id=ids.PROMPTS_UPLOAD,
                    children=html.Div(
                        ["Drop a .csv / .jsonl / .json file here or ", html.A("choose one")]
                    ),
                    className="upload",
                    multiple=False,
                ),
                style={"flex": "1 1 300px"},
            ),
        ],
        className="toolbar",
    )
    return card(
        "Import a prompt file",
        upload,
        html.P(
            "Columns: clean, corrupted, correct, incorrect (optional meta as a JSON object, "
            "correct_id, incorrect_id; an answer #<id> is a token id). The structure is checked "
            "here; then a worker checks every row against the model's tokenizer.",
            className="hint",
        ),
        message(None, id=ids.PROMPTS_UPLOAD_STATUS),
        html.Div(id=ids.PROMPTS_UPLOAD_ERRORS),
        *_poll(ids.PROMPTS_IMPORT_RUN, ids.PROMPTS_IMPORT_POLL),
    )


def _number(input_id: str, label: str, value: int, minimum: int) -> list[Any]:
    return [
        html.Span(label, className="field-label"),
        dcc.Input(
            id=input_id,
            type="number",
            value=value,
            min=minimum,
            step=1,
            className="input",
            style={"flex": "0 0 90px", "width": "90px"},
        ),
    ]


NEEDLE_TASK = "needle"


def needle_style(task: str | None) -> dict[str, str]:
    """The needle fields' row is shown for the needle task only."""
    return {} if task == NEEDLE_TASK else {"display": "none"}


def _text(input_id: str, label: str, placeholder: str, width: int) -> list[Any]:
    return [
        html.Span(label, className="field-label"),
        dcc.Input(
            id=input_id,
            type="text",
            placeholder=placeholder,
            className="input",
            style={"flex": f"0 0 {width}px", "width": f"{width}px"},
        ),
    ]


def _needle_fields(task: str | None) -> html.Div:
    return html.Div(
        [
            *_number(ids.PROMPTS_GEN_NEEDLE_LENGTH, "needle length", 6, 2),
            *_number(ids.PROMPTS_GEN_NEEDLE_QUERY, "query length", 2, 1),
            *_text(ids.PROMPTS_GEN_CONTEXTS, "contexts", "e.g. 32, 64 (default: four)", 200),
            *_text(ids.PROMPTS_GEN_DEPTHS, "depths", "in [0, 1], e.g. 0, 0.5, 1", 200),
        ],
        id=ids.PROMPTS_GEN_NEEDLE,
        className="toolbar compact",
        style=needle_style(task),
    )


def _generate_card(model_options: list[str], tasks: list[str]) -> html.Div:
    form = html.Div(
        [
            dcc.Dropdown(
                id=ids.PROMPTS_GEN_TASK,
                options=tasks,
                value=tasks[0],
                clearable=False,
                style={"flex": "0 0 150px", "width": "150px"},
            ),
            *_number(ids.PROMPTS_GEN_N, "pairs", 20, 1),
            *_number(ids.PROMPTS_GEN_SEED, "seed", 0, 0),
            _model_picker(ids.PROMPTS_GEN_MODEL, model_options, 220),
            dcc.Input(
                id=ids.PROMPTS_GEN_NAME,
                placeholder="name (optional)",
                className="input",
                style={"flex": "1 1 150px", "minWidth": "150px"},
            ),
            html.Button("Generate", id=ids.PROMPTS_GEN_SUBMIT, className="btn"),
        ],
        className="toolbar",
    )
    return card(
        "Generate a prompt set",
        form,
        _needle_fields(tasks[0]),
        html.P(
            "Seeded pairs of a known task, built for the model's tokenizer by a worker "
            "(induction, induction-contrast — every corrupted token differs, the contrast the "
            "zoo's circuit ground truth assumes — and greater-than suit the character-level "
            "zoo models; ioi needs a "
            "word-level tokenizer such as GPT-2's; needle hides a needle of distinct tokens at "
            "each depth of filler contexts and asks for it back, the prompts a taxonomy run "
            "scores retrieval heads on — contexts are token counts, depths run from 0, the "
            "start of the filler, to 1, its end). The default name is "
            "<task>-<model>-<pairs>-s<seed>.",
            className="hint",
        ),
        message(None, id=ids.PROMPTS_GEN_STATUS),
        html.Div(id=ids.PROMPTS_GEN_RESULT, className="table-wrap"),
        *_poll(ids.PROMPTS_GEN_RUN, ids.PROMPTS_GEN_POLL),
    )


def prompts_layout(
    rows: list[dict[str, Any]],
    set_options: list[dict[str, Any]],
    model_options: list[str],
    tasks: list[str],
) -> html.Div:
    return page(
        "Prompt sets",
        _import_card(model_options),
        _generate_card(model_options, tasks),
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


def pairs_table(rows: list[dict[str, Any]], table_id: str = "prompts-pairs-table") -> Any:
    return data_table(
        table_id,
        rows,
        ["index", "clean", "corrupted", "correct", "incorrect"],
        page_size=10,
    )
