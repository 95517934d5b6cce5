"""``headlab sweep``: fan one analysis out over models × prompt sets × option values.

``headlab sweep start KIND --model A --model B --prompts P --prompts Q --set key=value
--vary key=v1,v2`` queues one run per combination under one sweep record (all or none: every
combination is validated first). ``--wait`` runs them in this process, one after another,
keeping the model loaded; without it they wait for workers (``headlab worker``, ``headlab
serve``, or the Ray executor). ``sweep list`` and ``sweep show`` follow their progress.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from app.cli.context import open_store, store_errors
from app.cli.output import CliError, emit_json
from app.cli.run import execute_inline
from app.cli.runs import run_summary
from app.launching import LaunchRefused
from app.sweeps import SweepSpec, enqueue_sweep, parse_assignments, sweep_label
from storage.records import SweepRecord
from storage.settings import load_settings
from storage.store import ResultStore

app = typer.Typer(
    help="Run one analysis over models × prompt sets × options.", no_args_is_help=True
)
JSON = typer.Option(False, "--json", help="Print one JSON object.")


def sweep_summary(sweep: SweepRecord) -> dict[str, Any]:
    return {
        "id": sweep.id,
        "name": sweep.name,
        "kind": sweep.kind,
        "spec": sweep.spec,
        "n_runs": sweep.n_runs,
        "n_ended": sweep.n_ended,
        "counts": sweep.counts,
        "done": sweep.done,
        "created_at": sweep.created_at,
    }


@app.command("start")
def start(
    kind: str = typer.Argument(..., help="Run kind, e.g. circuit, heads, patch."),
    models: list[str] = typer.Option(..., "--model", help="Model spec; repeat for several."),
    prompt_sets: list[str] = typer.Option(
        None, "--prompts", help="Prompt set; repeat for several."
    ),
    fixed: list[str] = typer.Option(None, "--set", help="option=value for every run; repeatable."),
    vary: list[str] = typer.Option(
        None, "--vary", help="option=v1,v2,… crossed with everything else; repeatable."
    ),
    name: str | None = typer.Option(None, "--name", help="Default: <kind>-sweep-<n>."),
    wait: bool = typer.Option(False, "--wait/--no-wait", help="Run the sweep here and wait."),
    json_out: bool = JSON,
) -> None:
    """Queue one run per combination as one sweep."""
    store = open_store()
    try:
        spec = SweepSpec(
            kind=kind,
            models=list(models),
            prompt_sets=list(prompt_sets or []),
            fixed=parse_assignments(list(fixed or []), "--set", many=False),
            vary=parse_assignments(list(vary or []), "--vary", many=True),
        )
        with store_errors():
            sweep, runs = enqueue_sweep(store, spec, name)
    except LaunchRefused as exc:
        raise CliError(f"invalid {kind} sweep: {exc}") from None
    if not wait:
        if json_out:
            emit_json({"sweep": sweep_summary(sweep), "runs": [run_summary(r) for r in runs]})
            return
        typer.echo(
            f"sweep {sweep.id} {sweep.name!r}: {len(runs)} {kind} runs queued "
            f"(#{runs[0].id}–#{runs[-1].id}); follow it with `headlab sweep show {sweep.id}`"
        )
        return
    from analysis.worker import Worker

    runner = Worker(store)
    with store_errors():
        for run in runs:
            execute_inline(store, run, show_progress=not json_out, runner=runner)
        _report(store, store.get_sweep(sweep.id), json_out)
    final = store.get_sweep(sweep.id)
    unfinished = final.n_runs - final.counts.get("FINISHED", 0)
    if unfinished:
        raise CliError(
            f"sweep {final.id}: {unfinished} of {final.n_runs} runs did not finish "
            f"(`headlab sweep show {final.id}`)"
        )


def _report(store: ResultStore, sweep: SweepRecord, json_out: bool) -> None:
    runs = store.sweep_runs(sweep.id)
    if json_out:
        emit_json({"sweep": sweep_summary(sweep), "runs": [run_summary(r) for r in runs]})
        return
    counts = ", ".join(f"{n} {status.lower()}" for status, n in sorted(sweep.counts.items()))
    Console().print(
        f"sweep {sweep.id} [bold]{sweep.name}[/bold] ({sweep.kind}): "
        f"{sweep.n_ended}/{sweep.n_runs} ended — {counts}"
    )
    stale_after_s = load_settings().stale_after_s
    table = Table("run", "status", "progress", "model", "varies", "error")
    for run in runs:
        table.add_row(
            str(run.id),
            run.status_label(stale_after_s),
            f"{run.progress:.0%}",
            run.model_spec,
            sweep_label(sweep.spec, run).partition(" ")[2],
            (run.error or "")[:60],
        )
    Console().print(table)


@app.command("show")
def show(sweep: str = typer.Argument(..., help="Sweep name or id."), json_out: bool = JSON) -> None:
    """A sweep's progress and its runs."""
    store = open_store()
    with store_errors():
        _report(store, store.get_sweep(sweep), json_out)


@app.command("list")
def list_sweeps(
    limit: int = typer.Option(50, min=1, help="How many sweeps, newest first."),
    json_out: bool = JSON,
) -> None:
    """List sweeps with their progress, newest first."""
    store = open_store()
    with store_errors():
        sweeps = store.list_sweeps(limit=limit)
    if json_out:
        emit_json({"sweeps": [sweep_summary(s) for s in sweeps]})
        return
    table = Table("id", "name", "kind", "runs", "ended", "finished", "failed", "created")
    for s in sweeps:
        table.add_row(
            str(s.id),
            s.name,
            s.kind,
            str(s.n_runs),
            str(s.n_ended),
            str(s.counts.get("FINISHED", 0)),
            str(s.counts.get("FAILED", 0)),
            s.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    Console().print(table)
