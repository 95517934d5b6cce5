from __future__ import annotations

import torch

from analysis.prompt_batch import pair_batch_from_tokens
from analysis.sae.circuit_eval import derived_edges, evaluate_head_circuit
from analysis.sae.sae_circuit import (
    CodeSettings,
    discretise,
    head_codes,
    head_examples,
    train_code_sae,
    unique_positive_fraction,
)


def test_unique_positive_fraction():
    pos = torch.tensor([1, 1, 2, 3])
    neg = torch.tensor([3, 4, 4])
    assert unique_positive_fraction(pos, neg) == 0.75
    assert unique_positive_fraction(pos, torch.tensor([1, 2, 3])) == 0.0


def test_codes_separate_separable_examples():
    torch.manual_seed(0)
    a = torch.randn(10, 8) * 0.1 + torch.tensor([3.0] + [0.0] * 7)
    b = torch.randn(10, 8) * 0.1 + torch.tensor([0.0, 3.0] + [0.0] * 6)
    x = torch.cat([a, b])
    sae = train_code_sae(x, CodeSettings(n_codes=4, k=1, steps=200))
    codes = discretise(sae, x)
    assert unique_positive_fraction(codes[:10], codes[10:]) == 1.0
    same = discretise(sae, torch.cat([a, a]))
    assert unique_positive_fraction(same[:10], same[10:]) == 0.0


def _batch(model):
    gen = torch.Generator().manual_seed(0)
    clean, corrupt = [], []
    for _ in range(8):
        block = (torch.randperm(26, generator=gen)[:6] + 2).tolist()
        clean.append([0, *block, *block[:3]])
        other = (torch.randperm(26, generator=gen)[:3] + 2).tolist()
        corrupt.append([0, *block, *other])
    correct = [c[4] for c in clean]
    incorrect = [(c[4] + 1 - 2) % 26 + 2 for c in clean]
    return pair_batch_from_tokens(clean, corrupt, correct, incorrect)


def test_head_examples_take_each_prompts_last_position(model):
    batch = _batch(model)
    pos, neg = head_examples(model, batch, "last")
    assert pos.shape == (8, 2, 4, 8) and neg.shape == (8, 2, 4, 8)
    _, cache = model.run_with_cache(batch.clean)
    torch.testing.assert_close(pos[:, 1], cache["blocks.1.attn.hook_z"][:, -1])
    every, _ = head_examples(model, batch, "all")
    assert every.shape[0] == int(batch.lengths.sum())


def test_head_codes_score_every_head_and_evaluate_like_circuits(model):
    batch = _batch(model)
    codes = head_codes(model, batch, CodeSettings(n_codes=4, steps=30))
    assert [(c.layer, c.head) for c in codes] == [(layer, h) for layer in (0, 1) for h in range(4)]
    assert all(0.0 <= c.score <= 1.0 for c in codes)
    # layer-0 heads at the last position see different tokens on clean vs corrupted prompts
    scores = {f"a{c.layer}.h{c.head}": c.score for c in codes}
    chosen = {"a1.h0", "a0.h2"}
    from analysis.circuits.ground_truth import GroundTruth

    truth = GroundTruth(frozenset({"a1.h0", "a0.h2"}), frozenset())
    nodes, edges, summary = evaluate_head_circuit(model, batch, scores, chosen, truth=truth)
    by_name = {n.name: n for n in nodes}
    assert by_name["a1.h0"].in_circuit and not by_name["a1.h1"].in_circuit
    assert by_name["input"].in_circuit and by_name["logits"].in_circuit
    assert {"faithfulness", "faithfulness_curve", "roc"} <= set(summary)
    assert 0.0 <= summary["roc"]["node"]["auc"] <= 1.0
    kept = {(e.source, e.target) for e in edges if e.in_circuit}
    assert ("a0.h2", "a1.h0<v>") in kept and ("a0.h1", "a1.h0<v>") not in kept
    assert ("input", "logits") in kept


def test_derived_edge_scores_are_the_weaker_end(model):
    from analysis.circuits.graph import graph_for_model

    graph = graph_for_model(model)
    scores = {f"a{layer}.h{h}": 0.1 * (4 * layer + h) for layer in (0, 1) for h in range(4)}
    values, kept = derived_edges(graph, scores, {"a1.h3"})
    index = {e: i for i, e in enumerate(graph.edges)}
    assert abs(float(values[index[("a0.h2", "a1.h3<q>")]]) - 0.2) < 1e-6
    assert abs(float(values[index[("a1.h3", "logits")]]) - 0.7) < 1e-6
    assert float(values[index[("input", "logits")]]) == 1.0
    assert bool(kept[index[("a1.h3", "logits")]]) and not bool(kept[index[("a0.h2", "a1.h3<q>")]])
