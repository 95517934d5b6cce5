"""``headlab runs``: list, inspect, cancel and delete runs."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from app.cli.context import open_store, store_errors
from app.cli.output import CliError, emit_json, to_jsonable
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

app = typer.Typer(help="List, inspect, cancel and delete runs.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print one JSON object.")


def _status(value: str | None) -> RunStatus | None:
    if value is None:
        return None
    try:
        return RunStatus(value.upper())
    except ValueError:
        valid = ", ".join(s.value.lower() for s in RunStatus)
        raise CliError(f"unknown status {value!r}; choose one of: {valid}") from None


def run_summary(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status.value,
        "model": run.model_spec,
        "prompt_set_id": run.prompt_set_id,
        "progress": run.progress,
        "message": run.message,
        "error": run.error,
        "created_at": run.created_at,
        "elapsed_s": run.elapsed_s,
    }


@app.command("list")
def list_runs(
    kind: str | None = typer.Option(None, help="Only runs of this kind."),
    status: str | None = typer.Option(None, help="queued, running, finished, failed, cancelled"),
    limit: int = typer.Option(50, min=1, help="How many runs, newest first."),
    json_out: bool = JSON,
) -> None:
    """List runs, newest first."""
    store = open_store()
    with store_errors():
        runs = store.list_runs(kind=kind, status=_status(status), limit=limit)
    if json_out:
        emit_json({"runs": [run_summary(r) for r in runs]})
        return
    table = Table("id", "kind", "status", "progress", "model", "created", "error")
    for r in runs:
        table.add_row(
            str(r.id),
            r.kind,
            r.status.value,
            f"{r.progress:.0%}",
            r.model_spec,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (r.error or "")[:60],
        )
    Console().print(table)


def run_details(store: ResultStore, run: RunRecord, all_rows: bool) -> dict[str, Any]:
    frame = store.head_results(run.id)
    if not all_rows:
        frame = frame[frame["position"].isna() & frame["prompt"].isna()]
    results: dict[str, list[dict[str, Any]]] = {}
    for metric, group in frame.groupby("metric", sort=True):
        rows = group.drop(columns=["metric"]).astype(object)
        rows = rows.where(rows.notna(), None)
        results[str(metric)] = rows.to_dict(orient="records")
    details = run_summary(run) | {
        "config": run.config,
        "versions": run.versions,
        "code_version": run.code_version,
        "summary": run.summary,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "worker_id": run.worker_id,
        "metrics": store.metrics(run.id),
        "results": results,
        "artifacts": [
            {"name": a.name, "kind": a.kind, "sha256": a.sha256, "size": a.size, "path": a.path}
            for a in store.artifacts(run.id)
        ],
        "n_edges": len(store.edges(run.id)),
        "n_nodes": len(store.nodes(run.id)),
    }
    return details


@app.command()
def show(
    run_id: int = typer.Argument(..., metavar="RUN"),
    all_rows: bool = typer.Option(
        False, "--all-rows", help="Include per-position and per-prompt rows, not only aggregates."
    ),
    json_out: bool = JSON,
) -> None:
    """Show one run: config, status, summary and its per-head results."""
    store = open_store()
    with store_errors():
        details = run_details(store, store.get_run(run_id), all_rows)
    if json_out:
        emit_json(details)
        return
    console = Console()
    for key in ("id", "kind", "status", "model", "progress", "message", "error", "elapsed_s"):
        console.print(f"[bold]{key}[/bold]: {to_jsonable(details[key])}")
    console.print(f"[bold]metrics[/bold]: {', '.join(details['metrics']) or '-'}")
    console.print(f"[bold]artifacts[/bold]: {', '.join(a['name'] for a in details['artifacts'])}")
    if details["summary"]:
        console.print_json(data=to_jsonable(details["summary"]))


@app.command()
def cancel(run_id: int = typer.Argument(..., metavar="RUN"), json_out: bool = JSON) -> None:
    """Cancel a queued or running run."""
    store = open_store()
    with store_errors():
        run = store.request_cancel(run_id)
    if json_out:
        emit_json(run_summary(run))
    else:
        state = "cancelled" if run.status is RunStatus.CANCELLED else "cancel requested"
        typer.echo(f"run {run.id}: {state}")


@app.command()
def delete(run_id: int = typer.Argument(..., metavar="RUN"), json_out: bool = JSON) -> None:
    """Delete a run and its results (not while it is running: cancel it first)."""
    store = open_store()
    with store_errors():
        store.delete_run(run_id)
    if json_out:
        emit_json({"deleted": run_id})
    else:
        typer.echo(f"run {run_id} deleted")
