"""Exact edge patching: the reference every approximation is compared to.

For every edge e, run the model with only e ablated (every other edge keeps its clean value)
and score ``metric(G minus e) - metric_clean``: the quantity EAP estimates to first order. One
patched run per edge, ``task.chunk`` edges into one layer per model call, each recomputing only
its target's layer onwards (``analysis.circuits.layer_skip``): an edge into layer L costs
(n_layers - L) / n_layers of a forward. ``exact_estimate`` says what a run will cost before it
starts (the circuit job reports it); a GPT-2-small graph has 32,491 edges, ~11.8k forwards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float

from analysis.circuits.task import CircuitTask


def exact_batches(task: CircuitTask) -> list[torch.Tensor]:
    """Edge ids per batched call: ``task.chunk`` edges into one layer each (edges are ordered by
    target), so that every call recomputes only that layer onwards."""
    layers = [task.graph.channels[c].layer for c in task.graph.edge_target.tolist()]
    batches, start = [], 0
    for end in range(1, len(layers) + 1):
        if end == len(layers) or layers[end] != layers[start] or end - start == task.chunk:
            batches.append(torch.arange(start, end))
            start = end
    return batches


def exact_cost(task: CircuitTask) -> float:
    """Forward-equivalents exact patching will compute: an edge into layer L costs
    (n_layers - L) / n_layers of a forward (the layers it cannot change are skipped)."""
    n_layers = task.graph.n_layers
    layers = [task.graph.channels[c].layer for c in task.graph.edge_target.tolist()]
    return sum((n_layers - layer) / n_layers for layer in layers)


def exact_estimate(task: CircuitTask, forward_s: float) -> str:
    """What exact patching will cost, in words: edges x cost per edge, and the time at
    ``forward_s`` seconds per forward of the prompt batch."""
    cost = exact_cost(task)
    n = task.graph.n_edges
    seconds = cost * forward_s
    when = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
    if seconds >= 7200:
        when = f"{seconds / 3600:.1f} h"
    return (
        f"{n} edges x {cost / n:.2f} forward-equivalents each (layers before an edge's target "
        f"are skipped) = {cost:.0f} forwards at {forward_s:.3g} s = about {when}"
    )


def exact_scores(
    task: CircuitTask, on_progress: Callable[[float], None] | None = None
) -> Float[torch.Tensor, " edge"]:
    n = task.graph.n_edges
    scores = torch.empty(n)
    done = 0
    for idx in exact_batches(task):
        masks = torch.zeros(len(idx), n, dtype=torch.bool)
        masks[torch.arange(len(idx)), idx] = True
        scores[idx] = task.ablated_metric(masks) - task.metric_clean
        done += len(idx)
        if on_progress is not None:
            on_progress(done / n)
    return scores
