"""Circuit evaluation: faithfulness, faithfulness curves and node scores.

A circuit is a set of kept edges; it is run on the clean prompts with every other edge ablated
(carrying its ablation value, see ``task.py``). Its faithfulness is

    (m_circuit - m_corrupt) / (m_clean - m_corrupt)

(1 = the circuit alone reproduces the clean behaviour, 0 = no better than the ablated model).
The faithfulness curve keeps the top-k edges by |score| for a grid of k from 0 to all edges; its
area is the trapezoid integral over the kept fraction k / n_edges in [0, 1].

Node scores: a node's score is the sum of |score| over its outgoing edges (``logits``: over its
incoming edges). A node is in the circuit when one of its outgoing edges is (``logits``: an
incoming one).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from jaxtyping import Bool, Float

from analysis.circuits.graph import LOGITS, CircuitGraph
from analysis.circuits.task import CircuitTask
from analysis.metrics import MetricUndefined


def normalised(task: CircuitTask, values: torch.Tensor) -> torch.Tensor:
    den = task.metric_clean - task.metric_corrupt
    if abs(den) <= 1e-6 * max(1.0, abs(task.metric_clean), abs(task.metric_corrupt)):
        raise MetricUndefined(
            f"metric {task.metric} is the same with and without ablation "
            f"({task.metric_clean:.6g} vs {task.metric_corrupt:.6g}); faithfulness "
            "(m_circuit - m_corrupt) / (m_clean - m_corrupt) is undefined. Use pairs whose "
            "corruption changes the answer, or another metric"
        )
    return (values - task.metric_corrupt) / den


def faithfulness(task: CircuitTask, kept: Bool[torch.Tensor, " edge"]) -> float:
    """Faithfulness of the circuit made of the ``kept`` edges."""
    return float(normalised(task, task.ablated_metric((~kept)[None]))[0])


def top_k_mask(scores: Float[torch.Tensor, " edge"], k: int) -> torch.Tensor:
    """Keep the k edges of largest |score| (ties broken by edge order)."""
    kept = torch.zeros(scores.shape[0], dtype=torch.bool)
    if k > 0:
        order = torch.argsort(scores.abs(), descending=True, stable=True)
        kept[order[:k]] = True
    return kept


def k_grid(n_edges: int, points: int = 24) -> list[int]:
    """0, a geometric grid up to n_edges, and n_edges."""
    grid = {0, n_edges}
    grid |= {int(round(v)) for v in np.geomspace(1, max(n_edges, 1), points)}
    return sorted(k for k in grid if 0 <= k <= n_edges)


def faithfulness_curve(
    task: CircuitTask, scores: Float[torch.Tensor, " edge"], ks: list[int] | None = None
) -> dict[str, object]:
    """``{"k": [...], "faithfulness": [...], "area": x}`` over top-k circuits."""
    ks = ks if ks is not None else k_grid(task.graph.n_edges)
    kept = torch.stack([top_k_mask(scores, k) for k in ks])
    faith = normalised(task, task.ablated_metric(~kept)).tolist()
    x = np.asarray(ks, dtype=float) / max(task.graph.n_edges, 1)
    area = float(np.sum((x[1:] - x[:-1]) * (np.asarray(faith[1:]) + faith[:-1]) / 2))
    return {"k": list(ks), "faithfulness": [float(f) for f in faith], "area": area}


def smallest_faithful_k(curve: dict[str, object], target: float) -> int | None:
    """The smallest k on the curve whose faithfulness reaches ``target``."""
    for k, f in zip(curve["k"], curve["faithfulness"], strict=True):  # type: ignore[call-overload]
        if not math.isnan(f) and f >= target:
            return int(k)
    return None


def node_scores(
    graph: CircuitGraph, scores: torch.Tensor, kept: torch.Tensor
) -> dict[str, tuple[float, bool]]:
    """node name -> (score, in_circuit)."""
    src, tgt = graph.edge_source.tolist(), graph.edge_target.tolist()
    total = dict.fromkeys(graph.nodes, 0.0) | {LOGITS: 0.0}
    used = dict.fromkeys(total, False)
    for e, (u, c) in enumerate(zip(src, tgt, strict=True)):
        value, keep = abs(float(scores[e])), bool(kept[e])
        total[graph.nodes[u]] += value
        used[graph.nodes[u]] |= keep
        if graph.channels[c].kind == "logits":
            total[LOGITS] += value
            used[LOGITS] |= keep
    return {name: (total[name], used[name]) for name in total}
