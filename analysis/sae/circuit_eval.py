"""Scoring an SAE-code circuit against the model's ground truth (node ROC / AUC).

Ground truth comes from the model's ``ground_truth.json`` (zoo models:
``analysis/zoo/models/<name>/ground_truth.json``; ``{"nodes": ["a1.h2", ...], ...}``). Only
attention-head nodes are compared (SAE codes score heads). The node ROC is written under the
shared summary key ``roc`` = ``{"node": {"fpr", "tpr", "auc"}}``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from analysis.sae.sae_circuit import roc_auc
from storage.records import NodeIn

log = logging.getLogger(__name__)

ZOO_MODELS = Path(__file__).resolve().parents[1] / "zoo" / "models"


def ground_truth_for(spec: str) -> dict[str, Any] | None:
    """The ground-truth circuit of a model spec, or None when the model has none."""
    if not spec.startswith("zoo:"):
        return None
    path = ZOO_MODELS / spec.removeprefix("zoo:") / "ground_truth.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def node_roc(nodes: list[NodeIn], true_nodes: set[str]) -> dict[str, Any]:
    heads = [n for n in nodes if n.head is not None]
    return roc_auc([n.score for n in heads], [n.name in true_nodes for n in heads])


def score_nodes(ctx: Any, model: Any, nodes: list[NodeIn]) -> dict[str, Any]:
    """Summary entries (``roc``, ``ground_truth_nodes``) when ground truth exists, else {}."""
    truth = ground_truth_for(ctx.config.model)
    if truth is None:
        return {}
    true_heads = {n for n in truth.get("nodes", []) if n.startswith("a")}
    return {"roc": {"node": node_roc(nodes, true_heads)}, "ground_truth_nodes": sorted(true_heads)}
