"""A stored per-head score of another run, read as a pruning order's ranking.

The run must be finished, hold the metric as an aggregate per-head result, and have been made
on a model of the same shape (layers × heads); otherwise ``ScoreError`` names what is wrong
and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float

from storage.errors import NotFound
from storage.records import RunStatus

if TYPE_CHECKING:
    from storage.store import ResultStore


class ScoreError(ValueError):
    """The stored score cannot rank this model's heads; the message says why and the fix."""


def stored_score(
    store: ResultStore, run_id: int, metric: str, shape: tuple[int, int]
) -> Float[torch.Tensor, "layer head"]:
    """Run ``run_id``'s aggregate ``metric`` per head as a [layer, head] tensor."""
    try:
        run = store.get_run(run_id)
    except NotFound:
        raise ScoreError(
            f"score_run: there is no run {run_id}; pick one with: headlab runs list"
        ) from None
    if run.status != RunStatus.FINISHED:
        raise ScoreError(
            f"score_run: run {run_id} is {run.status.value}, not FINISHED; score heads with a "
            "finished run"
        )
    tables = store.result_tables(run_id)
    if metric not in tables.aggregate:
        known = ", ".join(tables.head_metrics()) or "none"
        raise ScoreError(
            f"score_metric: run {run_id} ({run.kind}) has no per-head metric {metric!r}; "
            f"choose one of: {known}"
        )
    frame = tables.aggregate[metric]
    layers, heads = shape
    found = (int(frame["layer"].max()) + 1, int(frame["head"].max()) + 1)
    if found != shape or len(frame) != layers * heads:
        raise ScoreError(
            f"score_run: run {run_id} scored {len(frame)} heads of a {found[0]} × {found[1]} "
            f"model ({run.model_spec}), this model has {layers} × {heads}; use a run on a "
            "model of the same shape"
        )
    grid = torch.full(shape, float("nan"), dtype=torch.float64)
    for layer, head, value in frame[["layer", "head", "value"]].itertuples(index=False):
        grid[int(layer), int(head)] = float(value)
    if torch.isnan(grid).any():
        raise ScoreError(
            f"score_metric: run {run_id}'s {metric!r} is missing or NaN for some heads; "
            "choose a metric scored on every head"
        )
    return grid
