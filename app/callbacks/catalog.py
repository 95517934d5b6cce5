"""Models and Prompt sets pages: enqueue catalog runs, poll them, show the outcome; preview pairs.

Each flow (add a model, import a file, generate a set) is ONE callback fired by its button (or
upload) and by its polling interval, and all three follow their run with ``follow_run``: the
button enqueues the run and starts the interval; each tick reads the run; a terminal state shows
the result (facts, the new set, or the errors by row) and stops the interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from app import ids
from app.callbacks.wiring import Fired, callback
from app.components.catalog import (
    facts_grid,
    needle_style,
    pairs_table,
    token_errors,
    upload_errors,
)
from app.components.common import table_data
from app.services import catalog, catalog_runs
from app.services.catalog_runs import RunState
from app.services.context import WebContext
from app.services.launch import LaunchError
from storage.errors import StoreError
from storage.records import RunRecord

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


@dataclass(frozen=True)
class Shown:
    """What a flow shows: the status line and its style, the result area, and the page outputs
    the flow refreshes (``None``: leave them as they are)."""

    text: Any
    style: str  # "info" | "ok" | "error"
    result: Any = ""
    refreshed: tuple[Any, ...] | None = None

    def outputs(self, n_refreshed: int) -> tuple[Any, ...]:
        refreshed = self.refreshed if self.refreshed is not None else (NO,) * n_refreshed
        return (self.text, f"message {self.style}", self.result, *refreshed)


def follow_run(
    ctx: WebContext,
    fired: Fired,
    button: str,
    run_id: int | None,
    n_refreshed: int,
    enqueue: Callable[[], RunRecord | Shown | None],
    finished: Callable[[RunState], Shown],
    failed: Callable[[RunState], Shown],
) -> tuple[Any, ...]:
    """One tick of an enqueue-then-poll flow. Outputs: status text, status class, result,
    ``n_refreshed`` page outputs, the followed run's id (a store) and the interval's
    ``disabled``. ``enqueue`` returns the queued run, a ``Shown`` error, or None (nothing to do).
    """
    keep = (NO,) * n_refreshed
    if fired.id == button:
        started = enqueue()
        if started is None:
            return (NO, NO, NO, *keep, NO, NO)
        if isinstance(started, Shown):
            return (*started.outputs(n_refreshed), None, True)
        return (_start(started.id, started.kind), "message info", "", *keep, started.id, False)
    if run_id is None:
        return (NO, NO, NO, *keep, NO, True)
    state = catalog_runs.run_state(ctx.store, int(run_id))
    if state.active:
        return (_waiting(state), "message info", NO, *keep, NO, False)
    shown = finished(state) if state.status == "FINISHED" else failed(state)
    return (*shown.outputs(n_refreshed), None, True)


@callback(
    Output(ids.PROMPTS_PREVIEW, "children"),
    Input(ids.PROMPTS_PREVIEW_SET, "value"),
    prevent_initial_call=True,
)
def preview(ctx: WebContext, prompt_set_id: int | None) -> object:
    if prompt_set_id is None:
        return ""
    return pairs_table(catalog.pair_rows(ctx.store, int(prompt_set_id)))


@callback(
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
    fired=True,
)
def add_model(ctx: WebContext, fired: Fired, _n, _t, name, spec, replace, run_id) -> tuple:
    def enqueue() -> RunRecord | Shown:
        try:
            return catalog_runs.enqueue_model_add(ctx.store, name, spec, bool(replace))
        except LaunchError as exc:
            return Shown(_field_errors(exc), "error")
        except StoreError as exc:
            return Shown(str(exc), "error")

    def finished(state: RunState) -> Shown:
        facts = state.summary.get("facts", {})
        text = f"Registered model {state.summary.get('model')} ({state.summary.get('spec')})."
        rows = table_data(catalog.model_rows(ctx.store))
        return Shown(text, "ok", facts_grid(catalog_runs.fact_rows(facts)), (rows,))

    def failed(state: RunState) -> Shown:
        return Shown(_ended_badly(state), "error")

    return follow_run(ctx, fired, ids.MODEL_ADD, run_id, 1, enqueue, finished, failed)


def _sets_outputs(ctx: WebContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = catalog.prompt_set_rows(ctx.store)
    return table_data(rows), catalog.set_options(rows)


@callback(
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
    fired=True,
)
def upload(ctx: WebContext, fired: Fired, contents, _t, filename, name, model, run_id) -> tuple:
    def enqueue() -> RunRecord | Shown | None:
        if not contents or not filename:
            return None
        run, errors = catalog_runs.enqueue_import(ctx.store, name, model, filename, contents)
        if run is None:
            count = len(errors)
            text = f"{filename} was not imported: {count} problem{'s' * (count != 1)}."
            return Shown(text, "error", upload_errors([e.as_dict() for e in errors]))
        return run

    def finished(state: RunState) -> Shown:
        s = state.summary
        text = (
            f"Imported {s.get('n_pairs')} pairs from {s.get('file')} as prompt set "
            f"{s.get('prompt_set')} (every row checked against {s.get('model')}'s tokenizer)."
        )
        return Shown(text, "ok", "", _sets_outputs(ctx))

    def failed(state: RunState) -> Shown:
        rows = catalog_runs.import_error_rows(ctx.store, state.run_id)
        return Shown(_ended_badly(state), "error", token_errors(rows))

    return follow_run(ctx, fired, ids.PROMPTS_UPLOAD, run_id, 2, enqueue, finished, failed)


@callback(
    Output(ids.PROMPTS_GEN_NEEDLE, "style"),
    Input(ids.PROMPTS_GEN_TASK, "value"),
    prevent_initial_call=True,  # the card comes with the first task's style
)
def show_needle_fields(ctx: WebContext, task: str | None) -> dict[str, str]:
    return needle_style(task)


@callback(
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
    State(ids.PROMPTS_GEN_NEEDLE_LENGTH, "value"),
    State(ids.PROMPTS_GEN_NEEDLE_QUERY, "value"),
    State(ids.PROMPTS_GEN_CONTEXTS, "value"),
    State(ids.PROMPTS_GEN_DEPTHS, "value"),
    prevent_initial_call=True,
    fired=True,
)
def generate(
    ctx: WebContext,
    fired: Fired,
    _n,
    _t,
    task,
    n,
    seed,
    model,
    name,
    run_id,
    needle_length=None,
    needle_query=None,
    contexts=None,
    depths=None,
) -> tuple:
    needle = {"needle_length": needle_length, "needle_query": needle_query,
              "contexts": contexts, "depths": depths}  # fmt: skip

    def enqueue() -> RunRecord | Shown:
        form = catalog_runs.generate_form(task, n, seed, model, name, needle)
        try:
            return catalog_runs.enqueue_generate(ctx.store, form)
        except LaunchError as exc:
            return Shown(_field_errors(exc), "error")

    def finished(state: RunState) -> Shown:
        s = state.summary
        text = f"Generated {s.get('n_pairs')} {s.get('task')} pairs as prompt set "
        text += f"{s.get('prompt_set')}."
        record = ctx.store.get_prompt_set(str(s.get("prompt_set")))
        preview = pairs_table(catalog.pair_rows(ctx.store, record.id), "prompts-gen-pairs")
        return Shown(text, "ok", preview, _sets_outputs(ctx))

    def failed(state: RunState) -> Shown:
        error = html.Pre(state.error, className="error-text") if state.error else ""
        return Shown(_ended_badly(state), "error", error)

    return follow_run(ctx, fired, ids.PROMPTS_GEN_SUBMIT, run_id, 2, enqueue, finished, failed)
