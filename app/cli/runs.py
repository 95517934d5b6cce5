"""``headlab runs``: list, inspect, cancel and delete runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from app.cli.context import open_store, store_errors
from app.cli.output import CliError, emit_json, to_jsonable
from app.export.data import records, run_table, table_bytes
from app.export.figure import check_output_path, write_bytes_atomic
from storage.grids import aggregate_rows
from storage.records import RunRecord, RunStatus
from storage.settings import load_settings
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
    stale_after_s = load_settings().stale_after_s
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status.value,
        "stale_s": run.stale_s(stale_after_s),
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
    stale_after_s = load_settings().stale_after_s
    table = Table("id", "kind", "status", "progress", "model", "created", "error")
    for r in runs:
        table.add_row(
            str(r.id),
            r.kind,
            r.status_label(stale_after_s),
            f"{r.progress:.0%}",
            r.model_spec,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (r.error or "")[:60],
        )
    Console().print(table)


def run_details(store: ResultStore, run: RunRecord, all_rows: bool) -> dict[str, Any]:
    frame = store.head_results(run.id)
    if not all_rows:
        frame = aggregate_rows(frame)
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
        "edges": records(run_table(store, run.id, "edges")),
        "nodes": records(run_table(store, run.id, "nodes")),
    }
    details["n_edges"], details["n_nodes"] = len(details["edges"]), len(details["nodes"])
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
    details["status"] = store.get_run(run_id).status_label(load_settings().stale_after_s)
    for key in ("id", "kind", "status", "model", "progress", "message", "error", "elapsed_s"):
        console.print(f"[bold]{key}[/bold]: {to_jsonable(details[key])}")
    console.print(f"[bold]metrics[/bold]: {', '.join(details['metrics']) or '-'}")
    console.print(f"[bold]artifacts[/bold]: {', '.join(a['name'] for a in details['artifacts'])}")
    if details["summary"]:
        console.print_json(data=to_jsonable(details["summary"]))


@app.command()
def results(
    run_id: int = typer.Argument(..., metavar="RUN"),
    table: str | None = typer.Option(
        None, "--table", help="heads, edges or nodes (default: edges for a circuit, else heads)."
    ),
    fmt: str = typer.Option("csv", "--format", help="csv, json or parquet."),
    out: Path | None = typer.Option(None, "--out", help="File to write (default: stdout)."),
) -> None:
    """Print or write one result table of a run (per-head rows, circuit edges or nodes)."""
    store = open_store()
    with store_errors():
        if table is None:
            table = "edges" if len(store.edges(run_id)) else "heads"
        frame = run_table(store, store.get_run(run_id).id, table)
        data = results_bytes(frame, fmt)
        if out is not None:
            write_bytes_atomic(check_output_path(out), data)
        elif fmt == "parquet":
            raise CliError("parquet is binary: give --out FILE.parquet, or use --format csv/json")
    if out is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        typer.echo(f"wrote {len(frame)} {table} rows of run {run_id} to {out}", err=True)


def results_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """One table as CSV/Parquet (``table_bytes``) or as a JSON list of rows."""
    if fmt == "json":
        return (json.dumps(records(frame), allow_nan=False) + "\n").encode("utf-8")
    if fmt not in ("csv", "parquet"):
        raise CliError(f"--format {fmt!r}: choose one of csv, json, parquet")
    return table_bytes(frame, fmt)


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
