"""Comparing runs: two runs of the same kind (run picker, the metrics both store), or every run
of a sweep (the metrics its finished runs share, one panel per run)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from app.services import runs as run_service
from app.services.context import WebContext

if TYPE_CHECKING:
    from app.services.results import ResultsReader


def run_options(ctx: WebContext) -> list[dict[str, Any]]:
    runs = run_service.finished_runs(ctx.store, limit=300)
    names = run_service.prompt_set_names(ctx.store)
    return [{"label": run_service.run_label(r, names), "value": r.id} for r in runs]


def default_pair(ctx: WebContext, a: str | None, b: str | None) -> tuple[int | None, int | None]:
    """The requested runs, else the two newest finished runs of the newest run's kind."""
    if a and a.isdigit() and b and b.isdigit():
        return int(a), int(b)
    runs = run_service.finished_runs(ctx.store, limit=100)
    for run in runs:
        same = [r for r in runs if r.kind == run.kind and r.id != run.id]
        if same and ctx.reader.metrics(run.id):
            return same[0].id, run.id
    return None, None


def common_metrics(ctx: WebContext, a: int | None, b: int | None) -> tuple[list[str], str]:
    """Metrics both runs store, and a message when they cannot be compared."""
    if a is None or b is None:
        return [], "Pick two finished runs of the same kind."
    run_a, run_b = ctx.store.get_run(a), ctx.store.get_run(b)
    shared = sorted(set(ctx.reader.metrics(a)) & set(ctx.reader.metrics(b)))
    if run_a.kind != run_b.kind:
        return (
            shared,
            f"Run #{a} is {run_a.kind} and run #{b} is {run_b.kind}: compare runs "
            "of the same kind.",
        )
    if not shared:
        return [], f"Runs #{a} and #{b} share no per-head metric."
    return shared, ""


# circuit runs store one node per head: its score and whether it is in the circuit
NODE_METRICS = {"circuit node score": "score", "in circuit": "in_circuit"}


def head_metrics(reader: ResultsReader, run_id: int) -> list[str]:
    """A run's per-head metrics, with its circuit nodes' as ``NODE_METRICS`` when it has any."""
    metrics = list(reader.metrics(run_id))
    nodes = reader.store.nodes(run_id)
    if not nodes.empty and nodes["head"].notna().any():
        metrics += list(NODE_METRICS)
    return metrics


def head_frame(reader: ResultsReader, run_id: int, metric: str) -> pd.DataFrame:
    """Long-format per-head rows (metric, layer, head, value) of one metric of a run."""
    if metric not in NODE_METRICS:
        return reader.head_grid(run_id, metric).frame
    nodes = reader.store.nodes(run_id)
    nodes = nodes[nodes["head"].notna()]
    return pd.DataFrame(
        {
            "metric": metric,
            "layer": nodes["layer"].astype(int),
            "head": nodes["head"].astype(int),
            "value": nodes[NODE_METRICS[metric]].astype(float),
        }
    )


def sweep_view(ctx: WebContext, sweep_id: int) -> tuple[Any, list[Any], list[str]]:
    """(sweep, its runs, the per-head metrics every finished run of it stores)."""
    sweep = ctx.store.get_sweep(sweep_id)
    runs = ctx.store.sweep_runs(sweep.id)
    finished = [r for r in runs if r.status.value == "FINISHED"]
    shared: set[str] | None = None
    for run in finished:
        metrics = set(head_metrics(ctx.reader, run.id))
        shared = metrics if shared is None else shared & metrics
    return sweep, runs, sorted(shared or [])


def sweep_rows(sweep: Any, runs: list[Any]) -> list[dict[str, Any]]:
    """One table row per run of a sweep: what varies, its status, and its scalar summary."""
    from app.sweeps import varied_values

    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": f"#{run.id}", **varied_values(sweep.spec, run)}
        row["status"] = run.status.value
        for key, value in run.summary.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                row[key] = round(float(value), 4)
        rows.append(row)
    return rows


def sweep_figure_spec(sweep_id: int, runs: list[Any], metric: str | None) -> dict[str, Any] | None:
    finished = [r.id for r in runs if r.status.value == "FINISHED"]
    if not metric or not finished:
        return None
    return {"kind": "compare_sweep", "sweep": sweep_id, "runs": finished, "metric": metric}
