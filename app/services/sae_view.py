"""What the SAEs page shows first: the run picker, the feature table and training curves."""

from __future__ import annotations

from typing import Any

from app.services import sae
from app.services.context import WebContext
from app.services.figures import page_figure
from storage.errors import NotFound


def feature_rows(ctx: WebContext, run_id: int) -> list[dict[str, Any]]:
    frame = sae.features(ctx.store, run_id).sort_values("frequency", ascending=False)
    return frame.to_dict("records")


def initial(ctx: WebContext, wanted: str | None) -> dict[str, Any]:
    runs = sae.sae_runs(ctx.store)
    options = [{"label": f"#{r.id} {r.kind} · {r.model_spec}", "value": r.id} for r in runs]
    run_id, note = _chosen_run(ctx, wanted, [r.id for r in runs])
    state: dict[str, Any] = {
        "options": options,
        "run": run_id,
        "features": [],
        "training": None,
        "training_spec": None,
        "note": note,
    }
    if run_id is None:
        state["note"] = (note + " " if note else "") + "No SAE runs yet: launch an `sae-train` run."
        return state
    try:
        state["features"] = feature_rows(ctx, run_id)
    except NotFound:
        state["note"] = f"Run #{run_id} stores no feature table."
    run = ctx.store.get_run(run_id)
    if run.summary.get("training_curve"):
        state["training_spec"] = {"kind": "sae_training", "run": run_id}
        state["training"] = page_figure(ctx.reader, state["training_spec"])
    return state


def _chosen_run(ctx: WebContext, wanted: str | None, sae_ids: list[int]) -> tuple[int | None, str]:
    """The SAE run to show — the one asked for when it is one of the picker's, else the newest —
    and a note saying why the one asked for is not shown (the picker always names the run the
    table and curves are of)."""
    newest = sae_ids[0] if sae_ids else None
    if not wanted or not wanted.isdigit():
        return newest, ""
    asked = int(wanted)
    if asked in sae_ids:
        return asked, ""
    try:
        run = ctx.store.get_run(asked)
        why = f"Run #{asked} ({run.kind}, {run.status.value.lower()}) is not a finished SAE run"
    except NotFound:
        why = f"There is no run #{asked}"
    shown = f"; showing the newest SAE run, #{newest}." if newest is not None else "."
    return newest, why + shown
