"""Home page summary, model and prompt-set listings (adding them: ``catalog_runs``)."""

from __future__ import annotations

from typing import Any

from analysis.zoo import checkpoint_label
from app.services import heads_view
from app.services import runs as run_service
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.store import ResultStore


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
    rows = []
    for m in store.list_models():
        f = m.facts
        rows.append(
            {
                "name": m.name,
                "spec": m.spec,
                "layers": f.get("n_layers", ""),
                "heads": f.get("n_heads", ""),
                "kv_heads": f.get("n_kv_heads", ""),
                "d_model": f.get("d_model", ""),
                "d_head": f.get("d_head", ""),
                "vocab": f.get("d_vocab", ""),
                "context": f.get("n_ctx", ""),
                "checkpoint of": checkpoint_label(m.spec) or "",
                "created": m.created_at.strftime("%Y-%m-%d %H:%M"),
            }
        )
    return rows


def model_specs(store: ResultStore) -> list[str]:
    """Stored model specs (each once), for the model pickers."""
    return list(dict.fromkeys(m.spec for m in store.list_models()))


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


def set_options(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"label": f"{r['name']} ({r['pairs']} pairs)", "value": r["id"]} for r in rows]


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
