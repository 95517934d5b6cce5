"""Models and Prompt sets pages: add a model, import a prompt file, preview pairs."""

from __future__ import annotations

import dash
from dash import Input, Output, State

from app import ids
from app.components.catalog import pairs_table, upload_errors
from app.components.common import table_data
from app.services import catalog
from app.services.context import WebContext
from storage.errors import StoreError


def register(app: dash.Dash, ctx: WebContext) -> None:
    @app.callback(
        Output(ids.MODEL_ADD_STATUS, "children"),
        Output(ids.MODEL_ADD_STATUS, "className"),
        Output(ids.MODELS_TABLE, "data"),
        Input(ids.MODEL_ADD, "n_clicks"),
        State(ids.MODEL_NAME, "value"),
        State(ids.MODEL_SPEC, "value"),
        prevent_initial_call=True,
    )
    def add_model(_n: int, name: str | None, spec: str | None) -> tuple:
        try:
            text = catalog.add_model(ctx.store, name, spec)
        except (ValueError, StoreError) as exc:
            return str(exc), "message error", dash.no_update
        rows = catalog.model_rows(ctx.store)
        return text, "message ok", table_data(rows)

    @app.callback(
        Output(ids.PROMPTS_UPLOAD_STATUS, "children"),
        Output(ids.PROMPTS_UPLOAD_STATUS, "className"),
        Output(ids.PROMPTS_UPLOAD_ERRORS, "children"),
        Output(ids.PROMPTS_TABLE, "data"),
        Input(ids.PROMPTS_UPLOAD, "contents"),
        State(ids.PROMPTS_UPLOAD, "filename"),
        State(ids.PROMPTS_UPLOAD_NAME, "value"),
        prevent_initial_call=True,
    )
    def upload(contents: str | None, filename: str | None, name: str | None) -> tuple:
        if not contents or not filename:
            return dash.no_update, dash.no_update, dash.no_update, dash.no_update
        record, errors = catalog.import_prompts(ctx.store, name, filename, contents)
        if record is None:
            count = len(errors)
            text = f"{filename} was not imported: {count} problem{'s' * (count != 1)}."
            return (
                text,
                "message error",
                upload_errors([e.as_dict() for e in errors]),
                dash.no_update,
            )
        rows = catalog.prompt_set_rows(ctx.store)
        text = f"Imported {record.n_pairs} pairs from {filename} as prompt set {record.name}."
        return text, "message ok", "", table_data(rows)

    @app.callback(
        Output(ids.PROMPTS_PREVIEW, "children"),
        Input(ids.PROMPTS_PREVIEW_SET, "value"),
        prevent_initial_call=True,
    )
    def preview(prompt_set_id: int | None) -> object:
        if prompt_set_id is None:
            return ""
        return pairs_table(catalog.pair_rows(ctx.store, int(prompt_set_id)))
