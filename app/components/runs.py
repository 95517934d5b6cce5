"""Runs page layout: filters, the run table (status, progress bar, elapsed, actions), paging."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from app import ids
from app.components.common import card, page
from storage.records import SweepRecord

STATUSES = ("QUEUED", "RUNNING", "FINISHED", "FAILED", "CANCELLED")
COLUMNS = ("run", "kind", "model", "prompt set", "status", "progress", "elapsed", "created", "")


def progress_bar(fraction: float, status: str) -> html.Div:
    pct = max(0.0, min(1.0, fraction)) * 100
    return html.Div(
        [
            html.Div(className=f"bar-fill {status.lower()}", style={"width": f"{pct:.0f}%"}),
            html.Span(f"{pct:.0f}%", className="bar-label"),
        ],
        className="bar",
        title=f"{pct:.1f}%",
    )


def _actions(row: dict[str, Any], href: str) -> list[Any]:
    actions: list[Any] = []
    if row["status"] == "FINISHED":
        actions.append(dcc.Link("Open", href=href, className="btn small"))
    if row["status"] in ("QUEUED", "RUNNING"):
        actions.append(
            html.Button(
                "Cancel",
                id=ids.run_action_id(ids.RUN_CANCEL, row["id"]),
                className="btn small warn",
            )
        )
    else:
        actions.append(
            html.Button(
                "Delete",
                id=ids.run_action_id(ids.RUN_DELETE, row["id"]),
                className="btn small danger",
            )
        )
    return actions


def run_table_row(row: dict[str, Any], href: str) -> list[html.Tr]:
    what = f"{row['kind']} / {row['method']}" if row["method"] else row["kind"]
    cells = [
        html.Td(f"#{row['id']}"),
        html.Td(what),
        html.Td(row["model"], className="mono"),
        html.Td(row["prompt_set"]),
        html.Td(
            [
                html.Span(row["status"], className=f"badge {row['status'].lower()}"),
                *(
                    [html.Span("stale", className="badge stale", title=row["stale"])]
                    if row.get("stale")
                    else []
                ),
            ]
        ),
        html.Td(
            [
                progress_bar(row["progress"], row["status"]),
                html.Div(row["message"], className="bar-message"),
            ]
        ),
        html.Td(row["elapsed"]),
        html.Td(row["created"], className="nowrap"),
        html.Td(_actions(row, href), className="actions"),
    ]
    out = [html.Tr(cells, id=f"run-row-{row['id']}", className="run-row")]
    if row["error"]:
        out.append(
            html.Tr(
                html.Td(html.Pre(row["error"], className="error-text"), colSpan=len(COLUMNS)),
                className="run-error",
            )
        )
    return out


def run_table(rows: list[tuple[dict[str, Any], str]]) -> html.Table | html.P:
    if not rows:
        return html.P("No runs match. Launch one on the Launch page.", className="muted")
    body = [tr for row, href in rows for tr in run_table_row(row, href)]
    return html.Table(
        [html.Thead(html.Tr([html.Th(c) for c in COLUMNS])), html.Tbody(body)],
        className="table runs",
    )


SWEEP_COLUMNS = ("sweep", "kind", "runs", "progress", "finished", "failed", "")


def sweep_table(sweeps: list[SweepRecord]) -> html.Table | html.P:
    """Sweeps with their progress (runs ended of all) and a link to compare their runs."""
    if not sweeps:
        return html.P(
            "No sweeps. `headlab sweep start KIND --model … --vary option=a,b` queues one.",
            className="muted",
        )
    body = []
    for sweep in sweeps:
        status = "finished" if sweep.done else "running"
        fraction = sweep.n_ended / sweep.n_runs if sweep.n_runs else 1.0
        finished = sweep.counts.get("FINISHED", 0)
        ended = f"{sweep.n_ended}/{sweep.n_runs} ended"
        link = (
            dcc.Link("Compare", href=f"/compare?sweep={sweep.id}", className="btn small")
            if finished
            else html.Span()
        )
        body.append(
            html.Tr(
                [
                    html.Td([html.Span(f"#{sweep.id} "), html.Strong(sweep.name)]),
                    html.Td(sweep.kind),
                    html.Td(str(sweep.n_runs)),
                    html.Td(
                        [
                            progress_bar(fraction, status.upper()),
                            html.Div(ended, className="bar-message"),
                        ]
                    ),
                    html.Td(str(finished)),
                    html.Td(str(sweep.counts.get("FAILED", 0))),
                    html.Td(link, className="actions"),
                ],
                id=f"sweep-row-{sweep.id}",
            )
        )
    return html.Table(
        [html.Thead(html.Tr([html.Th(c) for c in SWEEP_COLUMNS])), html.Tbody(body)],
        className="table runs sweeps",
    )


def runs_layout(kinds: list[str], kind: str | None, status: str | None) -> html.Div:
    filters = html.Div(
        [
            dcc.Dropdown(
                id=ids.RUNS_FILTER_KIND,
                options=kinds,
                value=kind,
                placeholder="all kinds",
                className="filter",
            ),
            dcc.Dropdown(
                id=ids.RUNS_FILTER_STATUS,
                options=list(STATUSES),
                value=status,
                placeholder="all statuses",
                className="filter",
            ),
            html.Button("Download CSV", id=ids.RUNS_CSV, className="btn small"),
            dcc.Download(id=ids.RUNS_DOWNLOAD),
            html.Span(id=ids.RUNS_ACTION_STATUS, className="action-status"),
        ],
        className="toolbar",
    )
    pager = html.Div(
        [
            html.Button("‹ Newer", id=ids.RUNS_PREV, className="btn small"),
            html.Span(id=ids.RUNS_PAGE_LABEL, className="muted"),
            html.Button("Older ›", id=ids.RUNS_NEXT, className="btn small"),
        ],
        className="pager",
    )
    return page(
        "Runs",
        card(None, filters, html.Div(id=ids.RUNS_TABLE, className="table-wrap"), pager),
        card("Sweeps", html.Div(id=ids.RUNS_SWEEPS, className="table-wrap")),
        dcc.Store(id=ids.RUNS_PAGE, data=0),
        dcc.Store(id=ids.RUNS_REFRESH, data=0),
        dcc.Store(id=ids.RUNS_DELETE_TARGET),
        dcc.ConfirmDialog(id=ids.RUNS_CONFIRM_DELETE, message="Delete this run?"),
        dcc.Interval(id=ids.RUNS_INTERVAL, interval=1000, disabled=True),
        subtitle="Queued, running and finished analyses. The list refreshes while a run is active.",
    )
