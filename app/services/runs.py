"""Run listings for the pages: rows for the Runs table, run pickers, where to open a run."""

from __future__ import annotations

from typing import Any

from analysis.configs.catalog import CATALOG_KINDS
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
PAGE_FOR_KIND = {
    "circuit": "/circuits",
    "sae-circuit": "/circuits",
    "sae-train": "/sae",
    "sae-eval": "/sae",
    "prompts-import": "/prompts",
    "prompts-generate": "/prompts",
    "model-add": "/models",
}


def open_href(run: RunRecord) -> str:
    return f"{PAGE_FOR_KIND.get(run.kind, '/heads')}?run={run.id}"


def format_elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def prompt_set_names(store: ResultStore) -> dict[int, str]:
    return {p.id: p.name for p in store.list_prompt_sets()}


def run_row(
    run: RunRecord, prompt_sets: dict[int, str], stale_after_s: float = float("inf")
) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "method": run.config.get("method", ""),
        "model": run.model_spec,
        "prompt_set": prompt_sets.get(run.prompt_set_id, "") if run.prompt_set_id else "",
        "status": run.status.value,
        "stale": "" if (age := run.stale_s(stale_after_s)) is None else f"no heartbeat {age:.0f} s",
        "progress": round(run.progress, 4),
        "message": run.message,
        "elapsed": format_elapsed(run.elapsed_s),
        "created": run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "error": run.error or "",
    }


def runs_page(
    store: ResultStore, kind: str | None, status: str | None, page: int, page_size: int = 25
) -> tuple[list[RunRecord], int]:
    kind = kind or None
    status = status or None
    total = store.count_runs(kind=kind, status=status)
    runs = store.list_runs(kind=kind, status=status, limit=page_size, offset=page * page_size)
    return runs, total


def any_active(store: ResultStore) -> bool:
    return any(store.count_runs(status=s) for s in ACTIVE)


def run_label(run: RunRecord, prompt_sets: dict[int, str]) -> str:
    method = run.config.get("method")
    what = f"{run.kind}/{method}" if method else run.kind
    ps = prompt_sets.get(run.prompt_set_id, "") if run.prompt_set_id else ""
    return f"#{run.id} {what} · {run.model_spec}" + (f" · {ps}" if ps else "")


def finished_runs(
    store: ResultStore, kinds: tuple[str, ...] | None = None, limit: int = 200
) -> list[RunRecord]:
    if kinds is None:  # every kind with results to browse (catalog runs only add inputs)
        newest = store.list_runs(status=RunStatus.FINISHED, limit=limit)
        return [r for r in newest if r.kind not in CATALOG_KINDS]
    runs: list[RunRecord] = []
    for kind in kinds:
        runs.extend(store.list_runs(kind=kind, status=RunStatus.FINISHED, limit=limit))
    return sorted(runs, key=lambda r: r.id, reverse=True)[:limit]
