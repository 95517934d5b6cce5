"""The QK fix (exact attention softmax for query/key edges) against independent computations:
the model's own attention pattern in an exact single-edge patched run, and finite differences
of the metric along that pattern change."""

from __future__ import annotations

import pytest
import torch

from analysis.circuits.eap import eap_scores
from analysis.circuits.qk_fix import QKFixUnsupported, check_attention
from analysis.circuits.task import build_task

from .conftest import hf_model, random_batch


def _patched_pattern(task, edge: int, layer: int, head: int) -> torch.Tensor:
    """Head ``head``'s pattern in the model's own forward with only ``edge`` ablated."""
    mask = torch.zeros(1, task.graph.n_edges)
    mask[0, edge] = 1.0
    with torch.no_grad():
        run = task.patcher.run(
            task.batch.clean, task.ablated, task.graph.dense(mask), record_patterns=True
        )
    return run.patterns[layer][:, head]


def _metric_along_pattern(task, layer: int, head: int, delta: torch.Tensor, t: float) -> float:
    """The metric of the model's clean forward with head's pattern A moved to A + t * delta.

    The bridge's ``hook_pattern`` only observes the pattern, so the move is made where it acts:
    z = A v is linear in A, so z becomes z + t * (delta v) at ``hook_z``."""
    model, saved = task.patcher.model, {}

    def keep_v(v: torch.Tensor, hook) -> None:
        saved["v"] = v[:, :, head]  # no GQA in these models: KV head = head

    def move_z(z: torch.Tensor, hook) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = z[:, :, head] + t * torch.einsum("bij,bje->bie", delta, saved["v"])
        return z

    hooks = [(f"blocks.{layer}.attn.hook_v", keep_v), (f"blocks.{layer}.attn.hook_z", move_z)]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(task.batch.clean)
    return float(task.metric_of(logits, 1)[0])


@pytest.mark.parametrize("model_name", ["attn_model", "mlp_model"])
def test_qk_scores_are_the_exact_pattern_change_times_its_gradient(
    model_name, batch, request
) -> None:
    model = request.getfixturevalue(model_name)
    task = build_task(model, batch, with_gradients=True)
    fixed, linear = eap_scores(task, qk_fix=True), eap_scores(task, qk_fix=False)
    assert (task.counter.n_forward, task.counter.n_backward) == (2, 1)
    graph = task.graph
    checked = 0
    for e, (source, target) in enumerate(graph.edges):
        channel = graph.channels[int(graph.edge_target[e])]
        if channel.kind not in ("q", "k"):
            assert fixed[e] == linear[e]  # value, MLP and logit edges keep the linear score
            continue
        if e % 4:  # a spread of q/k edges of both layers keeps the test fast
            continue
        layer, head = channel.layer, channel.index
        clean = task.clean_gradients.patterns[layer][:, head]
        delta = _patched_pattern(task, e, layer, head) - clean
        eps = 1e-2
        fd = (
            _metric_along_pattern(task, layer, head, delta, eps)
            - _metric_along_pattern(task, layer, head, delta, -eps)
        ) / (2 * eps)
        assert float(fixed[e]) == pytest.approx(fd, abs=2e-3 + 2e-3 * abs(fd)), (source, target)
        checked += 1
    assert checked >= 8


def test_qk_fix_tends_to_the_linear_score_for_small_ablations(attn_model, batch) -> None:
    """Scaling every ablation by eps, fixed / eps -> the linear EAP score (same first order)."""
    base = build_task(attn_model, batch, with_gradients=True)
    linear = eap_scores(base, qk_fix=False)
    errors = []
    for eps in (1e-1, 1e-2):
        small = build_task(attn_model, batch, with_gradients=True)
        small.ablated = small.clean_outputs + eps * (base.ablated - base.clean_outputs)
        fixed = eap_scores(small, qk_fix=True) / eps
        errors.append(float((fixed - linear).abs().max() / linear.abs().max()))
    assert errors[1] < 0.02 and errors[1] < errors[0]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_attention_check_on_hf_architectures(kind: str) -> None:
    """GPT-2's attention is reproduced from its q/k hooks; Llama's rotary embeddings act after
    them, so the fix is refused with a clear error (and qk_fix=False still works)."""
    model = hf_model(kind)
    task = build_task(model, random_batch(n=3, pos=6), with_gradients=True)
    assert task.clean_gradients is not None
    if kind == "gpt2":
        check_attention(task.patcher, task.clean_gradients)
        assert torch.isfinite(eap_scores(task)).all()
    else:
        with pytest.raises(QKFixUnsupported, match="no-qk-fix"):
            eap_scores(task)
        assert torch.isfinite(eap_scores(task, qk_fix=False)).all()
