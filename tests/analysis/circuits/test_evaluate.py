"""Faithfulness, curves, ROC/AUC, ground-truth loading and torch-free re-selection."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.circuits import evaluate
from analysis.circuits.ground_truth import (
    GroundTruth,
    GroundTruthError,
    edge_labels,
    load_ground_truth,
    roc_curve,
    score_against,
)
from analysis.circuits.select import select_circuit, select_edges
from analysis.circuits.task import build_task


def test_faithfulness_endpoints_and_curve(mlp_model, batch) -> None:
    task = build_task(mlp_model, batch)
    n = task.graph.n_edges
    assert evaluate.faithfulness(task, torch.ones(n, dtype=torch.bool)) == pytest.approx(
        1, abs=1e-4
    )
    assert evaluate.faithfulness(task, torch.zeros(n, dtype=torch.bool)) == pytest.approx(
        0, abs=1e-4
    )
    scores = torch.randn(n, generator=torch.Generator().manual_seed(0))
    curve = evaluate.faithfulness_curve(task, scores)
    assert curve["k"][0] == 0 and curve["k"][-1] == n
    assert curve["faithfulness"][0] == pytest.approx(0, abs=1e-4)
    assert curve["faithfulness"][-1] == pytest.approx(1, abs=1e-4)
    k = curve["k"][5]
    assert curve["faithfulness"][5] == pytest.approx(
        evaluate.faithfulness(task, evaluate.top_k_mask(scores, k)), abs=1e-5
    )


def _brute_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    wins = [1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg)]
    return float(np.mean(wins))


def test_roc_auc_is_the_mann_whitney_statistic() -> None:
    gen = np.random.default_rng(0)
    for _ in range(20):
        scores = gen.integers(0, 5, 30).astype(float)  # many ties
        labels = gen.random(30) < 0.3
        if labels.all() or not labels.any():
            continue
        roc = roc_curve(scores, labels)
        assert roc["auc"] == pytest.approx(_brute_auc(scores, labels))
        assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and roc["fpr"][-1] == 1
    with pytest.raises(GroundTruthError, match="positives and negatives"):
        roc_curve(np.ones(3), np.ones(3, dtype=bool))


def test_ground_truth_files_and_node_sets(tmp_path) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"nodes": ["a0.h1", "a1.h0"], "edges": []}))
    truth = load_ground_truth(str(path), "hf:whatever", None)
    edges = [("input", "a0.h1<q>"), ("a0.h1", "a1.h0<k>"), ("a0.h0", "a1.h0<k>"),
             ("a1.h0", "logits"), ("a1.h1", "logits")]  # fmt: skip
    assert edge_labels(truth, edges).tolist() == [True, True, False, True, False]
    with pytest.raises(GroundTruthError, match="not in this model"):
        edge_labels(GroundTruth(frozenset(), frozenset({("a5.h0", "logits")})), edges)
    with pytest.raises(GroundTruthError, match="no ground truth"):
        load_ground_truth(str(tmp_path / "missing.json"), "hf:x", None)
    with pytest.raises(GroundTruthError, match="not a zoo model"):
        load_ground_truth(None, "hf:gpt2", None)
    ioi = load_ground_truth("gpt2-small-ioi", "hf:gpt2", None)
    assert "a9.h9" in ioi.nodes and ("a2.h2", "a5.h5<k>") in ioi.edges


def test_positional_edges_are_left_out_under_position_keeping_ablations(tmp_path) -> None:
    edges = [("input", "a0.h0<q>"), ("input", "a0.h0<v>"), ("a0.h0", "logits"),
             ("input", "logits"), ("input", "a0.h1<v>")]  # fmt: skip
    data = {"nodes": ["a0.h0"], "edges": [list(e) for e in edges[:3]],
            "positional_edges": [["input", "a0.h0<q>"]]}  # fmt: skip
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    truth = load_ground_truth(str(path), "hf:x", None)
    # the positional edge scores 0, as it does under corrupted/mean ablation
    scores, nodes = np.array([0.0, 2.0, 1.0, 0.5, 0.1]), {"a0.h0": 3.0, "a0.h1": 0.1}
    for ablation in ("corrupted", "mean"):
        roc = score_against(truth, edges, scores, nodes, ablation=ablation)["edge"]
        assert roc["auc"] == 1.0 and roc["n_excluded"] == 1
    roc = score_against(truth, edges, scores, nodes, ablation="zero")["edge"]
    assert roc["auc"] == pytest.approx(4 / 6)  # the 0-scored positive loses to both negatives
    assert roc["n_excluded"] == 0
    path.write_text(json.dumps(data | {"positional_edges": [["input", "a0.h1<v>"]]}))
    with pytest.raises(GroundTruthError, match="also be listed in 'edges'"):
        load_ground_truth(str(path), "hf:x", None)


def test_select_circuit_is_torch_free_and_rethresholds() -> None:
    edges = pd.DataFrame(
        {"source": ["a", "b", "c", "d"], "target": ["x"] * 4,
         "score": [0.1, -0.5, 0.3, 0.0], "in_circuit": [False, True, False, False]}
    )  # fmt: skip
    assert select_circuit(edges, top_k=2)["in_circuit"].tolist() == [False, True, True, False]
    assert select_circuit(edges, threshold=0.1)["in_circuit"].tolist() == [True, True, True, False]
    assert select_circuit(edges)["in_circuit"].tolist() == [False, True, False, False]
    assert select_edges(edges, top_k=2)["source"].tolist() == ["b", "c"]
    code = "import sys, analysis.circuits.select; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
