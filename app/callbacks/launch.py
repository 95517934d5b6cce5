"""Launch page: kind → form; submit → validate → enqueue, errors next to their fields."""

from __future__ import annotations

import dash
from dash import ALL, MATCH, Input, Output, State, dcc, html

from app import ids
from app.callbacks.wiring import Fired, callback
from app.components.launch import form
from app.services import launch
from app.services.context import WebContext
from app.services.runs import open_href
from storage.errors import StoreError
from storage.records import SweepRecord


@callback(
    Output(ids.LAUNCH_FORM, "children"),
    Output(ids.LAUNCH_STATUS, "children", allow_duplicate=True),
    Input(ids.LAUNCH_KIND, "value"),
    prevent_initial_call=True,
)
def pick_kind(ctx: WebContext, kind: str) -> tuple:
    models, sets = launch.choices(ctx.store)
    return form(launch.form_fields(kind), models, sets), ""


@callback(
    Output(ids.launch_field_id(MATCH), "value"),
    Output(ids.launch_error_id(MATCH), "children", allow_duplicate=True),
    Input(ids.launch_upload_id(MATCH), "contents"),
    State(ids.launch_upload_id(MATCH), "filename"),
    prevent_initial_call=True,
)
def upload_file(ctx: WebContext, contents: str | None, filename: str | None) -> tuple:
    """Store the uploaded file in the data directory; the field gets its upload reference."""
    if not contents:
        return dash.no_update, ""
    try:
        ref = launch.save_upload(ctx.store, contents, filename or "upload")
    except StoreError as exc:
        return dash.no_update, str(exc)
    return ref, ""


@callback(
    Output(ids.launch_error_id(ALL), "children"),
    Output(ids.LAUNCH_STATUS, "children"),
    Output(ids.LAUNCH_STATUS, "className"),
    Input(ids.LAUNCH_SUBMIT, "n_clicks"),
    State(ids.LAUNCH_KIND, "value"),
    State(ids.launch_field_id(ALL), "value"),
    prevent_initial_call=True,
    fired=True,
)
def submit(ctx: WebContext, fired: Fired, _n: int, kind: str, values: list) -> tuple:
    names = [field_id["field"] for field_id in fired.state_ids[1]]
    error_fields = [error_id["field"] for error_id in fired.output_ids[0]]
    try:
        queued = launch.launch(ctx.store, kind, dict(zip(names, values, strict=True)))
    except launch.LaunchError as exc:
        errors = [exc.fields.get(name, "") for name in error_fields]
        other = {k: v for k, v in exc.fields.items() if k not in error_fields}
        text = "Fix the fields marked in red." + "".join(f" {k}: {v}." for k, v in other.items())
        return errors, text, "message error"
    except StoreError as exc:
        return [""] * len(error_fields), str(exc), "message error"
    if isinstance(queued, SweepRecord):
        status = html.Span(
            [
                f"Sweep #{queued.id} {queued.name!r}: {queued.n_runs} {queued.kind} runs queued. ",
                dcc.Link("Watch them on the Runs page", href="/runs"),
                " · ",
                dcc.Link("compare them →", href=f"/compare?sweep={queued.id}"),
            ]
        )
    else:
        status = html.Span(
            [
                f"Run #{queued.id} ({queued.kind}) queued. ",
                dcc.Link(f"Open run #{queued.id} →", href=open_href(queued), id="launch-run-link"),
                " (its results show there when a worker has finished it) · ",
                dcc.Link("watch it on the Runs page", href=f"/runs?kind={queued.kind}"),
            ]
        )
    return [""] * len(error_fields), status, "message ok"
