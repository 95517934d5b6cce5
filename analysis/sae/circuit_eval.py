"""Scoring an SAE-code head circuit with the circuit engine's own evaluation.

The SAE-code method scores attention heads only. To evaluate it exactly like EAP / EAP-IG / ACDC
(``analysis.circuits``), the head scores are turned into the same edge graph:

- node scores: heads get their SAE-code score; ``input``, ``logits`` and MLP nodes are not judged
  by the method and are always kept (stored with score 1.0 for input/logits, 0.0 for MLPs so that
  they rank last in the node ROC);
- edge score of (source, channel) = min(score of source, score of the node reading the channel),
  with unjudged nodes counting 1; an edge is in the circuit when both ends are kept.

Faithfulness of the kept edges, the faithfulness curve over top-k edges by derived score and the
ROC (edge and node) against the ground truth come from ``analysis.circuits.evaluate`` and
``analysis.circuits.ground_truth`` unchanged, under the shared summary keys ``faithfulness``,
``faithfulness_curve`` and ``roc``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from analysis.circuits import evaluate
from analysis.circuits.ground_truth import (
    GroundTruth,
    score_against,
)
from analysis.circuits.task import build_task
from analysis.metrics import MetricUndefined
from analysis.prompt_batch import PairBatch
from storage.records import EdgeIn, NodeIn

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

ENDPOINTS = ("input", "logits")


def _judged(graph: Any, head_scores: dict[str, float]) -> dict[str, float]:
    """Score of every graph node for deriving edges (unjudged nodes count 1)."""
    return {name: head_scores.get(name, 1.0) for name in graph.nodes} | {"logits": 1.0}


def derived_edges(
    graph: Any, head_scores: dict[str, float], chosen: set[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge scores, kept mask) of the graph from head scores and the chosen heads."""
    score = _judged(graph, head_scores)
    keep = {n for n in score if n not in head_scores} | chosen
    values, kept = [], []
    for (source, _), c in zip(graph.edges, graph.edge_target.tolist(), strict=True):
        owners = graph.channel_owners(graph.channels[c])
        values.append(min(score[source], max(score[o] for o in owners)))
        kept.append(source in keep and any(o in keep for o in owners))
    return torch.tensor(values, dtype=torch.float32), torch.tensor(kept)


def output_rows(
    graph: Any, head_scores: dict[str, float], chosen: set[str], edge_scores: torch.Tensor,
    kept: torch.Tensor,
) -> tuple[list[NodeIn], list[EdgeIn]]:  # fmt: skip
    from analysis.circuits.graph import node_layer_head

    nodes = []
    for name in (*graph.nodes, "logits"):
        layer, head = node_layer_head(name)
        if name in head_scores:
            nodes.append(NodeIn(name, layer, head, head_scores[name], name in chosen))
        else:
            nodes.append(NodeIn(name, layer, head, 1.0 if name in ENDPOINTS else 0.0, True))
    edges = [
        EdgeIn(s, t, float(v), bool(k))
        for (s, t), v, k in zip(graph.edges, edge_scores.tolist(), kept.tolist(), strict=True)
    ]
    return nodes, edges


def evaluate_head_circuit(
    model: TransformerBridge,
    batch: PairBatch,
    head_scores: dict[str, float],
    chosen: set[str],
    *,
    metric: str = "logit_diff",
    ablation: str = "corrupted",
    truth: GroundTruth | None = None,
) -> tuple[list[NodeIn], list[EdgeIn], dict[str, Any]]:
    """Nodes, derived edges and summary (faithfulness, curve, ROC) of a head circuit."""
    task = build_task(model, batch, metric=metric, ablation=ablation)
    edge_scores, kept = derived_edges(task.graph, head_scores, chosen)
    nodes, edges = output_rows(task.graph, head_scores, chosen, edge_scores, kept)
    summary: dict[str, Any] = {
        "metric": metric,
        "ablation": ablation,
        "metric_clean": task.metric_clean,
        "metric_corrupt": task.metric_corrupt,
        "n_edges": task.graph.n_edges,
        "n_edges_in_circuit": int(kept.sum()),
    }
    try:
        summary["faithfulness"] = evaluate.faithfulness(task, kept)
        summary["faithfulness_curve"] = evaluate.faithfulness_curve(task, edge_scores)
    except MetricUndefined as exc:
        summary["faithfulness_error"] = str(exc)
    if truth is not None:
        owners = {c.name: task.graph.channel_owners(c) for c in task.graph.channels}
        node_values = {n.name: n.score for n in nodes}
        summary["roc"] = score_against(
            truth, list(task.graph.edges), np.asarray(edge_scores), node_values, owners, ablation
        )
    return nodes, edges, summary
