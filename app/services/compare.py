"""Comparing two runs of the same kind: run picker and the metrics both runs store."""

from __future__ import annotations

from typing import Any

from app.services import runs as run_service
from app.services.context import WebContext


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
