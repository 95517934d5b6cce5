"""Home page summary, model and prompt-set listings, and adding models / prompt sets."""

from __future__ import annotations

import re
from typing import Any

from app.services import heads_view
from app.services import runs as run_service
from app.services.context import WebContext
from app.services.figures import page_figure
from app.services.prompt_upload import RowError, decode_upload, parse_prompt_file
from storage.errors import StoreError
from storage.records import PromptSetRecord
from storage.store import ResultStore

SPEC_PATTERN = re.compile(r"^(zoo|hf):\S+$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def home(ctx: WebContext) -> dict[str, Any]:
    store = ctx.store
    recent = store.list_runs(limit=8)
    counts = {
        "models": len(store.list_models()),
        "prompt_sets": len(store.list_prompt_sets()),
        "runs": store.count_runs(),
        "active": sum(store.count_runs(status=s) for s in run_service.ACTIVE),
    }
    rows = [
        {
            "id": r.id,
            "kind": r.kind,
            "model": r.model_spec,
            "status": r.status.value,
            "href": run_service.open_href(r),
        }
        for r in recent
    ]
    out: dict[str, Any] = {
        "counts": counts,
        "recent": rows,
        "heatmap": None,
        "href": None,
        "title": "Heads",
    }
    first = run_service.finished_runs(store, ("heads",), limit=1)
    for run in first + run_service.finished_runs(store, limit=20):
        metric = heads_view.default_metric(ctx.reader.metrics(run.id))
        if metric:
            out["heatmap"] = page_figure(ctx.reader, heads_view.heatmap_spec(run.id, metric))
            out["href"] = f"/heads?run={run.id}&metric={metric}"
            out["title"] = "Heads of the newest run"
            break
    return out


def model_rows(store: ResultStore) -> list[dict[str, Any]]:
    return [
        {
            "name": m.name,
            "spec": m.spec,
            "facts": m.facts,
            "created": m.created_at.strftime("%Y-%m-%d %H:%M"),
        }
        for m in store.list_models()
    ]


def add_model(store: ResultStore, name: str | None, spec: str | None) -> str:
    """Adds the model; returns a confirmation or raises ValueError naming the bad field."""
    name, spec = (name or "").strip(), (spec or "").strip()
    if not NAME_PATTERN.match(name):
        raise ValueError("name: use 1–64 letters, digits, '.', '_' or '-'")
    if not SPEC_PATTERN.match(spec):
        raise ValueError("spec: write zoo:<name> or hf:<hub id or local folder>")
    store.add_model(name, spec, {"added_from": "web"})
    return f"Added model {name} ({spec}). Its facts are recorded when a run first loads it."


def prompt_set_rows(store: ResultStore) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "name": p.name,
            "pairs": p.n_pairs,
            "source": p.source,
            "model": p.model_spec or "",
            "hash": p.content_hash[:12],
            "created": p.created_at.strftime("%Y-%m-%d %H:%M"),
        }
        for p in store.list_prompt_sets()
    ]


def import_prompts(
    store: ResultStore, name: str | None, filename: str, contents: str
) -> tuple[PromptSetRecord | None, list[RowError]]:
    name = (name or "").strip() or filename.rsplit(".", 1)[0]
    if not NAME_PATTERN.match(name):
        return None, [RowError(None, "name", "name the set with letters, digits, '.', '_', '-'")]
    parsed = parse_prompt_file(filename, decode_upload(contents))
    if parsed.errors:
        return None, parsed.errors
    try:
        record = store.add_prompt_set(name, parsed.pairs, f"upload:{filename}", None)
    except StoreError as exc:
        return None, [RowError(None, "name", str(exc))]
    return record, []


def pair_rows(store: ResultStore, prompt_set_id: int, limit: int = 500) -> list[dict[str, Any]]:
    return [
        {
            "index": p.index,
            "clean": p.clean,
            "corrupted": p.corrupted,
            "correct": p.correct,
            "incorrect": p.incorrect,
        }
        for p in store.get_pairs(prompt_set_id)[:limit]
    ]
