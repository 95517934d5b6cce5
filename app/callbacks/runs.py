"""Runs page: the polled table, paging, cancel, delete (after a confirm dialog), CSV download."""

from __future__ import annotations

import io
from collections.abc import Callable

import dash
import pandas as pd
from dash import ALL, Input, Output, State, dcc

from app import ids
from app.callbacks.wiring import Fired, callback
from app.components.runs import run_table, sweep_table
from app.services import runs as run_service
from app.services.context import WebContext
from storage.errors import StoreError

PAGE_SIZE = 25
SWEEPS_SHOWN = 10


def clicked_run(fired: Fired) -> int | None:
    """The run whose action button was clicked; None when the buttons were only re-rendered."""
    if not fired.id or not fired.clicked:
        return None
    return int(fired.id["run"])


def run_action(act: Callable[[], object], done: str, counter: int | None) -> tuple[str, int]:
    """(status line, bumped refresh counter) after ``act``: ``done``, or the store's error."""
    try:
        act()
    except StoreError as exc:
        return str(exc), (counter or 0) + 1
    return done, (counter or 0) + 1


@callback(
    Output(ids.RUNS_TABLE, "children"),
    Output(ids.RUNS_INTERVAL, "disabled"),
    Output(ids.RUNS_PAGE_LABEL, "children"),
    Output(ids.RUNS_SWEEPS, "children"),
    Input(ids.RUNS_INTERVAL, "n_intervals"),
    Input(ids.RUNS_FILTER_KIND, "value"),
    Input(ids.RUNS_FILTER_STATUS, "value"),
    Input(ids.RUNS_PAGE, "data"),
    Input(ids.RUNS_REFRESH, "data"),
)
def refresh_table(
    ctx: WebContext, _n: int, kind: str | None, status: str | None, page: int, _r: int
) -> tuple:
    runs, total = run_service.runs_page(ctx.store, kind, status, page or 0, PAGE_SIZE)
    names = run_service.prompt_set_names(ctx.store)
    stale_after_s = ctx.settings.stale_after_s
    rows = [(run_service.run_row(r, names, stale_after_s), run_service.open_href(r)) for r in runs]
    first = (page or 0) * PAGE_SIZE
    label = f"{first + 1}–{first + len(runs)} of {total}" if runs else f"0 of {total}"
    sweeps = ctx.store.list_sweeps(limit=SWEEPS_SHOWN)
    return run_table(rows), not run_service.any_active(ctx.store), label, sweep_table(sweeps)


@callback(
    Output(ids.RUNS_PAGE, "data"),
    Input(ids.RUNS_PREV, "n_clicks"),
    Input(ids.RUNS_NEXT, "n_clicks"),
    Input(ids.RUNS_FILTER_KIND, "value"),
    Input(ids.RUNS_FILTER_STATUS, "value"),
    State(ids.RUNS_PAGE, "data"),
    prevent_initial_call=True,
    fired=True,
)
def change_page(
    ctx: WebContext, fired: Fired, _p: int, _n: int, kind: str | None, status: str | None, page: int
) -> int:
    if fired.id == ids.RUNS_NEXT:
        total = ctx.store.count_runs(kind=kind or None, status=status or None)
        return page + 1 if (page + 1) * PAGE_SIZE < total else page
    if fired.id == ids.RUNS_PREV:
        return max(0, page - 1)
    return 0


@callback(
    Output(ids.RUNS_ACTION_STATUS, "children"),
    Output(ids.RUNS_REFRESH, "data"),
    Input(ids.run_action_id(ids.RUN_CANCEL, ALL), "n_clicks"),
    State(ids.RUNS_REFRESH, "data"),
    prevent_initial_call=True,
    fired=True,
)
def cancel_run(ctx: WebContext, fired: Fired, _c: list, counter: int) -> tuple:
    run_id = clicked_run(fired)
    if run_id is None:
        return dash.no_update, dash.no_update  # buttons re-rendered, not clicked
    return run_action(
        lambda: ctx.store.request_cancel(run_id), f"Cancel requested for run #{run_id}.", counter
    )


@callback(
    Output(ids.RUNS_CONFIRM_DELETE, "displayed"),
    Output(ids.RUNS_CONFIRM_DELETE, "message"),
    Output(ids.RUNS_DELETE_TARGET, "data"),
    Input(ids.run_action_id(ids.RUN_DELETE, ALL), "n_clicks"),
    prevent_initial_call=True,
    fired=True,
)
def ask_delete(ctx: WebContext, fired: Fired, _d: list) -> tuple:
    run_id = clicked_run(fired)
    if run_id is None:
        return dash.no_update, dash.no_update, dash.no_update
    text = f"Delete run #{run_id} with all its results and files? This cannot be undone."
    return True, text, run_id


@callback(
    Output(ids.RUNS_ACTION_STATUS, "children", allow_duplicate=True),
    Output(ids.RUNS_REFRESH, "data", allow_duplicate=True),
    Input(ids.RUNS_CONFIRM_DELETE, "submit_n_clicks"),
    State(ids.RUNS_DELETE_TARGET, "data"),
    State(ids.RUNS_REFRESH, "data"),
    prevent_initial_call=True,
)
def delete_run(ctx: WebContext, _s: int, run_id: int | None, counter: int) -> tuple:
    if run_id is None:
        return dash.no_update, dash.no_update

    def delete() -> None:
        ctx.store.delete_run(int(run_id))
        ctx.reader.forget(int(run_id))

    return run_action(delete, f"Deleted run #{run_id}.", counter)


@callback(
    Output(ids.RUNS_DOWNLOAD, "data"),
    Input(ids.RUNS_CSV, "n_clicks"),
    State(ids.RUNS_FILTER_KIND, "value"),
    State(ids.RUNS_FILTER_STATUS, "value"),
    prevent_initial_call=True,
)
def runs_csv(ctx: WebContext, _n: int, kind: str | None, status: str | None) -> dict:
    total = ctx.store.count_runs(kind=kind or None, status=status or None)
    runs = ctx.store.list_runs(kind=kind or None, status=status or None, limit=max(total, 1))
    names = run_service.prompt_set_names(ctx.store)
    frame = pd.DataFrame([run_service.run_row(r, names, ctx.settings.stale_after_s) for r in runs])
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return dcc.send_string(buffer.getvalue(), "runs.csv")
