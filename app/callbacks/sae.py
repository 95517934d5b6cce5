"""SAEs page: run → features and curves; picked feature → head shares, contexts, DFA."""

from __future__ import annotations

from dash import Input, Output, State

from app import ids
from app.callbacks.wiring import Fired, callback
from app.components.common import empty_figure, table_data
from app.components.sae_contexts import highlighted_contexts
from app.services import sae, sae_view
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.errors import StoreError

TRAINING_SPEC = ids.export_id("sae-training")
SHARES_SPEC = ids.export_id("sae-shares")
DFA_SPEC = ids.export_id("sae-dfa")
CONTEXTS_SPEC = ids.export_id("sae-contexts")


def _figure(ctx: WebContext, spec: dict) -> tuple:
    try:
        return page_figure(ctx.reader, spec), spec
    except (StoreError, ValueError) as exc:
        return empty_figure(str(exc)), None


@callback(
    Output(ids.SAE_FEATURES, "data"),
    Output(ids.SAE_FEATURES, "selected_rows"),
    Output(ids.SAE_TRAINING, "figure"),
    Output(TRAINING_SPEC, "spec"),
    Output(ids.SAE_MESSAGE, "children"),
    Output(ids.SAE_MESSAGE, "className"),
    Input(ids.SAE_RUN, "value"),
    prevent_initial_call=True,
)
def pick_run(ctx: WebContext, run_id: int) -> tuple:
    state = sae_view.initial(ctx, str(run_id))
    figure = state["training"] or empty_figure("No training curve stored")
    note = state["note"]
    shown = (note, "message info" if note else "message empty")
    return table_data(state["features"]), [], figure, state["training_spec"], *shown


@callback(
    Output(ids.SAE_FEATURE, "data"),
    Input(ids.SAE_FEATURES, "selected_rows"),
    Input(ids.SAE_FEATURES, "active_cell"),
    State(ids.SAE_FEATURES, "derived_viewport_data"),
    State(ids.SAE_FEATURES, "data"),
    fired=True,
)
def pick_feature(
    ctx: WebContext,
    fired: Fired,
    selected: list[int] | None,
    cell: dict | None,
    view: list | None,
    data: list | None,
) -> int | None:
    rows = view if view is not None else data or []
    if fired.id and cell and "row" in cell and cell["row"] < len(rows):
        index = cell["row"]
    elif selected:
        index = selected[0]
        rows = data or []
    else:
        return int(rows[0]["feature"]) if rows else None
    return int(rows[index]["feature"])


@callback(
    Output(ids.SAE_SHARES, "figure"),
    Output(SHARES_SPEC, "spec"),
    Output(ids.SAE_CONTEXTS, "children"),
    Output(CONTEXTS_SPEC, "spec"),
    Output(ids.SAE_DFA, "figure"),
    Output(DFA_SPEC, "spec"),
    Input(ids.SAE_FEATURE, "data"),
    State(ids.SAE_RUN, "value"),
)
def show_feature(ctx: WebContext, feature: int | None, run_id: int | None) -> tuple:
    if feature is None or run_id is None:
        blank = empty_figure("Pick a feature in the table")
        return blank, None, "", None, blank, None
    shares = _figure(ctx, {"kind": "sae_shares", "run": run_id, "feature": feature})
    dfa = _figure(ctx, {"kind": "sae_dfa", "run": run_id, "feature": feature})
    contexts_spec: dict[str, object] | None = {
        "kind": "sae_contexts",
        "run": run_id,
        "feature": feature,
    }
    try:
        contexts = highlighted_contexts(sae.top_contexts(ctx.store, run_id, feature))
    except (StoreError, ValueError) as exc:
        contexts, contexts_spec = str(exc), None
    return (*shares, contexts, contexts_spec, *dfa)
