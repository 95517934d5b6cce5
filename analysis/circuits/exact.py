"""Exact edge patching: the reference every approximation is compared to.

For every edge e, run the model with only e ablated (every other edge keeps its clean value)
and score ``metric(G minus e) - metric_clean``: the quantity EAP estimates to first order. One
forward per edge (batched ``task.chunk`` edges per model call), so it is meant for small
models; a GPT-2-small graph has ~32k edges.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float

from analysis.circuits.task import CircuitTask


def exact_scores(
    task: CircuitTask, on_progress: Callable[[float], None] | None = None
) -> Float[torch.Tensor, " edge"]:
    n = task.graph.n_edges
    scores = torch.empty(n)
    for start in range(0, n, task.chunk):
        idx = torch.arange(start, min(start + task.chunk, n))
        masks = torch.zeros(len(idx), n, dtype=torch.bool)
        masks[torch.arange(len(idx)), idx] = True
        scores[idx] = task.ablated_metric(masks) - task.metric_clean
        if on_progress is not None:
            on_progress(min(1.0, (start + len(idx)) / n))
    return scores
