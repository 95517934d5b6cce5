"""Models and Prompt sets pages: enqueue catalog runs, poll them, show the outcome; preview pairs.

Each flow (add a model, import a file, generate a set) is ONE callback fired by its button (or
upload) and by its polling interval: the button enqueues the run and starts the interval; each
tick reads the run; a terminal state shows the result (facts, the new set, or the errors by row)
and stops the interval.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from app import ids
from app.components.catalog import facts_grid, pairs_table, token_errors, upload_errors
from app.components.common import table_data
from app.services import catalog, catalog_runs
from app.services.catalog_runs import RunState
from app.services.context import WebContext
from app.services.launch import LaunchError
from storage.errors import StoreError

NO = dash.no_update


def _waiting(state: RunState) -> list[Any]:
    return [state.waiting_text(), " ", dcc.Link("Runs page →", href="/runs")]


def _ended_badly(state: RunState) -> str:
    if state.status == "CANCELLED":
        return f"Run #{state.run_id} was cancelled; nothing was stored."
    return state.error.splitlines()[0] if state.error else f"Run #{state.run_id} failed."


def _field_errors(exc: LaunchError) -> str:
    return "; ".join(f"{field}: {text}" for field, text in exc.fields.items())


def _start(run_id: int, kind: str) -> list[Any]:
    return [
        f"Run #{run_id} ({kind}) queued; waiting for a worker… ",
        dcc.Link("Runs →", href="/runs"),
    ]


def register(app: dash.Dash, ctx: WebContext) -> None:
    register_models(app, ctx)
    register_import(app, ctx)
    register_generate(app, ctx)

    @app.callback(
        Output(ids.PROMPTS_PREVIEW, "children"),
        Input(ids.PROMPTS_PREVIEW_SET, "value"),
        prevent_initial_call=True,
    )
    def preview(prompt_set_id: int | None) -> object:
        if prompt_set_id is None:
            return ""
        return pairs_table(catalog.pair_rows(ctx.store, int(prompt_set_id)))


def register_models(app: dash.Dash, ctx: WebContext) -> None:
    @app.callback(
        Output(ids.MODEL_ADD_STATUS, "children"),
        Output(ids.MODEL_ADD_STATUS, "className"),
        Output(ids.MODEL_FACTS, "children"),
        Output(ids.MODELS_TABLE, "data"),
        Output(ids.MODEL_RUN, "data"),
        Output(ids.MODEL_POLL, "disabled"),
        Input(ids.MODEL_ADD, "n_clicks"),
        Input(ids.MODEL_POLL, "n_intervals"),
        State(ids.MODEL_NAME, "value"),
        State(ids.MODEL_SPEC, "value"),
        State(ids.MODEL_REPLACE, "value"),
        State(ids.MODEL_RUN, "data"),
        prevent_initial_call=True,
    )
    def add_model(_n, _t, name, spec, replace, run_id) -> tuple:
        if dash.ctx.triggered_id == ids.MODEL_ADD:
            try:
                run = catalog_runs.enqueue_model_add(ctx.store, name, spec, bool(replace))
            except LaunchError as exc:
                return _field_errors(exc), "message error", "", NO, None, True
            except StoreError as exc:
                return str(exc), "message error", "", NO, None, True
            return _start(run.id, run.kind), "message info", "", NO, run.id, False
        if run_id is None:
            return NO, NO, NO, NO, NO, True
        state = catalog_runs.run_state(ctx.store, int(run_id))
        if state.active:
            return _waiting(state), "message info", NO, NO, NO, False
        if state.status != "FINISHED":
            return _ended_badly(state), "message error", "", NO, None, True
        facts = state.summary.get("facts", {})
        text = f"Registered model {state.summary.get('model')} ({state.summary.get('spec')})."
        rows = table_data(catalog.model_rows(ctx.store))
        return text, "message ok", facts_grid(catalog_runs.fact_rows(facts)), rows, None, True


def _sets_outputs(ctx: WebContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = catalog.prompt_set_rows(ctx.store)
    return table_data(rows), catalog.set_options(rows)


def register_import(app: dash.Dash, ctx: WebContext) -> None:
    @app.callback(
        Output(ids.PROMPTS_UPLOAD_STATUS, "children"),
        Output(ids.PROMPTS_UPLOAD_STATUS, "className"),
        Output(ids.PROMPTS_UPLOAD_ERRORS, "children"),
        Output(ids.PROMPTS_TABLE, "data"),
        Output(ids.PROMPTS_PREVIEW_SET, "options"),
        Output(ids.PROMPTS_IMPORT_RUN, "data"),
        Output(ids.PROMPTS_IMPORT_POLL, "disabled"),
        Input(ids.PROMPTS_UPLOAD, "contents"),
        Input(ids.PROMPTS_IMPORT_POLL, "n_intervals"),
        State(ids.PROMPTS_UPLOAD, "filename"),
        State(ids.PROMPTS_UPLOAD_NAME, "value"),
        State(ids.PROMPTS_UPLOAD_MODEL, "value"),
        State(ids.PROMPTS_IMPORT_RUN, "data"),
        prevent_initial_call=True,
    )
    def upload(contents, _t, filename, name, model, run_id) -> tuple:
        if dash.ctx.triggered_id == ids.PROMPTS_UPLOAD:
            if not contents or not filename:
                return NO, NO, NO, NO, NO, NO, NO
            run, errors = catalog_runs.enqueue_import(ctx.store, name, model, filename, contents)
            if run is None:
                count = len(errors)
                text = f"{filename} was not imported: {count} problem{'s' * (count != 1)}."
                table = upload_errors([e.as_dict() for e in errors])
                return text, "message error", table, NO, NO, None, True
            return _start(run.id, run.kind), "message info", "", NO, NO, run.id, False
        if run_id is None:
            return NO, NO, NO, NO, NO, NO, True
        state = catalog_runs.run_state(ctx.store, int(run_id))
        if state.active:
            return _waiting(state), "message info", NO, NO, NO, NO, False
        if state.status != "FINISHED":
            rows = catalog_runs.import_error_rows(ctx.store, state.run_id)
            return _ended_badly(state), "message error", token_errors(rows), NO, NO, None, True
        s = state.summary
        text = (
            f"Imported {s.get('n_pairs')} pairs from {s.get('file')} as prompt set "
            f"{s.get('prompt_set')} (every row checked against {s.get('model')}'s tokenizer)."
        )
        return text, "message ok", "", *_sets_outputs(ctx), None, True


def register_generate(app: dash.Dash, ctx: WebContext) -> None:
    @app.callback(
        Output(ids.PROMPTS_GEN_STATUS, "children"),
        Output(ids.PROMPTS_GEN_STATUS, "className"),
        Output(ids.PROMPTS_GEN_RESULT, "children"),
        Output(ids.PROMPTS_TABLE, "data", allow_duplicate=True),
        Output(ids.PROMPTS_PREVIEW_SET, "options", allow_duplicate=True),
        Output(ids.PROMPTS_GEN_RUN, "data"),
        Output(ids.PROMPTS_GEN_POLL, "disabled"),
        Input(ids.PROMPTS_GEN_SUBMIT, "n_clicks"),
        Input(ids.PROMPTS_GEN_POLL, "n_intervals"),
        State(ids.PROMPTS_GEN_TASK, "value"),
        State(ids.PROMPTS_GEN_N, "value"),
        State(ids.PROMPTS_GEN_SEED, "value"),
        State(ids.PROMPTS_GEN_MODEL, "value"),
        State(ids.PROMPTS_GEN_NAME, "value"),
        State(ids.PROMPTS_GEN_RUN, "data"),
        prevent_initial_call=True,
    )
    def generate(_n, _t, task, n, seed, model, name, run_id) -> tuple:
        if dash.ctx.triggered_id == ids.PROMPTS_GEN_SUBMIT:
            form = {"task": task, "n": n, "seed": seed, "model": model, "name": name}
            try:
                run = catalog_runs.enqueue_generate(ctx.store, form)
            except LaunchError as exc:
                return _field_errors(exc), "message error", "", NO, NO, None, True
            return _start(run.id, run.kind), "message info", "", NO, NO, run.id, False
        if run_id is None:
            return NO, NO, NO, NO, NO, NO, True
        state = catalog_runs.run_state(ctx.store, int(run_id))
        if state.active:
            return _waiting(state), "message info", NO, NO, NO, NO, False
        if state.status != "FINISHED":
            error = html.Pre(state.error, className="error-text") if state.error else ""
            return _ended_badly(state), "message error", error, NO, NO, None, True
        s = state.summary
        text = f"Generated {s.get('n_pairs')} {s.get('task')} pairs as prompt set "
        text += f"{s.get('prompt_set')}."
        record = ctx.store.get_prompt_set(str(s.get("prompt_set")))
        preview = pairs_table(catalog.pair_rows(ctx.store, record.id), "prompts-gen-pairs")
        return text, "message ok", preview, *_sets_outputs(ctx), None, True
