"""The QK fix (exact attention softmax for query/key edges) against independent computations:
the model's own attention pattern in an exact single-edge patched run, and finite differences
of the metric along that pattern change; the fast path against the per-edge reference; rotary
(Llama) models; the fallback to linear scores where the attention cannot be reproduced."""

from __future__ import annotations

import dataclasses
import itertools
import logging

import pytest
import torch

from analysis.circuits import qk_fix
from analysis.circuits.discover import DiscoverySettings, discover
from analysis.circuits.eap import eap_scores
from analysis.circuits.eap_ig import eap_ig_scores
from analysis.circuits.qk_fix import QKFixUnsupported, apply_qk_fix, check_attention
from analysis.circuits.qk_fix_reference import apply_qk_fix_reference
from analysis.circuits.task import build_task
from analysis.prompt_batch import build_pair_batch, pair_batch_from_tokens
from analysis.prompts.generators import generate_pairs
from analysis.rotary import RotaryTables, apply_rotary, rotate_pairs
from analysis.zoo import is_built, zoo_folder
from analysis.zoo.checkpoint import load_zoo_bridge

from ..heads_fixtures import VOCAB as CHAR_VOCAB
from ..heads_fixtures import llama_style
from .conftest import VOCAB, hf_model, perturb_norms, random_batch


@pytest.fixture(scope="module")
def gqa_model():
    """Grouped-query attention without rotary embeddings (4 heads, 2 KV heads, LayerNorm)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_heads=4, n_layers=2, n_ctx=32, d_vocab=VOCAB, d_mlp=64,
        act_fn="gelu", normalization_type="LN", seed=0, n_key_value_heads=2,
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg)
    perturb_norms(model)
    model.enable_compatibility_mode()
    return model


@pytest.fixture(scope="module")
def llama_model():
    """Llama-style: rotary embeddings, RMSNorm, grouped-query attention (4 heads, 2 KV)."""
    return hf_model("llama")


def _metric_along_pattern(task, layer: int, head: int, delta: torch.Tensor, t: float) -> float:
    """The metric of the model's clean forward with head's pattern A moved to A + t * delta.

    The bridge's ``hook_pattern`` only observes the pattern, so the move is made where it acts:
    z = A v is linear in A, so z becomes z + t * (delta v) at ``hook_z``."""
    model, saved = task.patcher.model, {}

    group = task.graph.n_heads // task.graph.n_kv_heads

    def keep_v(v: torch.Tensor, hook) -> None:
        saved["v"] = v[:, :, head // group]  # the head's KV head (GQA)

    def move_z(z: torch.Tensor, hook) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = z[:, :, head] + t * torch.einsum("bij,bje->bie", delta, saved["v"])
        return z

    hooks = [(f"blocks.{layer}.attn.hook_v", keep_v), (f"blocks.{layer}.attn.hook_z", move_z)]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(task.batch.clean)
    return float(task.metric_of(logits, 1)[0])


@pytest.fixture(scope="module")
def code_model():
    """zoo:code-6l: TransformerLens-native rotary (interleaved pairs), RMSNorm, GQA 8/4."""
    if not is_built("code-6l"):
        pytest.skip("zoo:code-6l is not built")
    model = load_zoo_bridge(zoo_folder("code-6l"))
    model.enable_compatibility_mode()
    return model


@pytest.fixture(scope="module")
def code_task(code_model):
    batch = build_pair_batch(code_model, generate_pairs(code_model, "identifier-induction", 4))
    return build_task(code_model, batch, with_gradients=True)


@pytest.mark.parametrize("model_name", ["attn_model", "mlp_model", "llama_model"])
def test_qk_scores_are_the_exact_pattern_change_times_its_gradient(
    model_name, batch, request
) -> None:
    model = request.getfixturevalue(model_name)
    task = build_task(model, batch, with_gradients=True)
    fixed, linear = eap_scores(task, qk_fix=True), eap_scores(task, qk_fix=False)
    assert (task.counter.n_forward, task.counter.n_backward) == (2, 1)
    graph = task.graph
    qk = []
    for e in range(graph.n_edges):
        if graph.channels[int(graph.edge_target[e])].kind not in ("q", "k"):
            assert fixed[e] == linear[e]  # value, MLP and logit edges keep the linear score
        elif e % 4 == 0:  # a spread of q/k edges of both layers keeps the test fast
            qk.append(e)
    assert len(qk) >= 8
    _assert_finite_differences(task, fixed, qk)


def _assert_finite_differences(task, fixed: torch.Tensor, edges: list[int]) -> None:
    """Each q/k edge's fixed score equals the central finite difference of the metric along
    the pattern change(s) its ablation causes in the model's own forward."""
    graph = task.graph
    for e in edges:
        channel = graph.channels[int(graph.edge_target[e])]
        group = graph.n_heads // graph.n_kv_heads  # a key channel feeds its group's heads
        first = channel.index * (1 if channel.kind == "q" else group)
        heads = range(first, first + (1 if channel.kind == "q" else group))
        patched = _patched_patterns(task, e)[channel.layer]
        fd = sum(_pattern_move_effect(task, patched, channel.layer, head) for head in heads)
        assert float(fixed[e]) == pytest.approx(fd, abs=2e-3 + 2e-3 * abs(fd)), graph.edges[e]


def _patched_patterns(task, edge: int) -> list[torch.Tensor]:
    """Every layer's pattern in the model's own forward with only ``edge`` ablated."""
    mask = torch.zeros(1, task.graph.n_edges)
    mask[0, edge] = 1.0
    with torch.no_grad():
        run = task.patcher.run(
            task.batch.clean, task.ablated, task.graph.dense(mask), record_patterns=True
        )
    return run.patterns


def _pattern_move_effect(
    task, patched: torch.Tensor, layer: int, head: int, eps: float = 1e-2
) -> float:
    """Central finite difference of the metric along the pattern change that the model itself
    computes for ``head`` (``patched``: its layer's patterns with the edge ablated)."""
    delta = patched[:, head] - task.clean_gradients.patterns[layer][:, head]
    return (
        _metric_along_pattern(task, layer, head, delta, eps)
        - _metric_along_pattern(task, layer, head, delta, -eps)
    ) / (2 * eps)


def test_qk_fix_on_the_native_rotary_code_model(code_task) -> None:
    """zoo:code-6l rotates adjacent pairs from its attention's cached tables (no
    position_embeddings reach its blocks): the tables are recorded in that convention, the
    check passes, and the fixed q/k scores equal finite differences, on the edges where the
    fix moves the score most and on a spread of others."""
    task, run = code_task, code_task.clean_gradients
    assert run.rotary is not None and run.rotary.interleaved
    check_attention(task.patcher, run)
    fixed, linear = eap_scores(task, qk_fix=True), eap_scores(task, qk_fix=False)
    assert task.qk_fix_skipped is None
    graph = task.graph
    qk = [e for e in range(graph.n_edges)
          if graph.channels[int(graph.edge_target[e])].kind in ("q", "k")]  # fmt: skip
    moved = sorted(qk, key=lambda e: -float((fixed[e] - linear[e]).abs()))
    assert float((fixed[moved[0]] - linear[moved[0]]).abs()) > 0.05  # the fix matters here
    _assert_finite_differences(task, fixed, moved[:3] + qk[:: len(qk) // 3][:3])


def test_a_rotary_model_without_recorded_tables_says_so(code_task) -> None:
    run = dataclasses.replace(code_task.clean_gradients, rotary=None)
    with pytest.raises(QKFixUnsupported, match="rotary but its forward showed no rotary tables"):
        check_attention(code_task.patcher, run)


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
    """GPT-2's attention and Llama's (rotary, applied after the q/k hooks, from the (cos, sin)
    the blocks are given) are reproduced from the q/k hooks."""
    task = build_task(hf_model(kind), random_batch(n=3, pos=6), with_gradients=True)
    assert task.clean_gradients is not None
    assert (task.clean_gradients.rotary is not None) == (kind == "llama")
    check_attention(task.patcher, task.clean_gradients)
    assert torch.isfinite(eap_scores(task)).all() and task.qk_fix_skipped is None


def test_attention_check_on_the_heads_llama_fixture(tmp_path) -> None:
    model = llama_style(tmp_path)
    gen = torch.Generator().manual_seed(0)
    toks = torch.randint(2, CHAR_VOCAB, (2, 3, 7), generator=gen).tolist()
    batch = pair_batch_from_tokens(toks[0], toks[1], [3, 4, 5], [6, 7, 8])
    task = build_task(model, batch, with_gradients=True)
    check_attention(task.patcher, task.clean_gradients)


def test_apply_rotary_matches_transformers() -> None:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 5, 3, 8, generator=gen), torch.randn(2, 5, 1, 8, generator=gen)
    angles = torch.randn(1, 5, 4, generator=gen)
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    want_q, want_k = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    assert torch.allclose(apply_rotary(q, (cos, sin)), want_q.transpose(1, 2), atol=1e-6)
    assert torch.allclose(apply_rotary(k, (cos, sin)), want_k.transpose(1, 2), atol=1e-6)
    partial = apply_rotary(torch.cat([q, q], -1), (cos, sin))  # rotary on the first 8 dims
    assert torch.equal(partial[..., 8:], q) and torch.allclose(
        partial[..., :8], want_q.transpose(1, 2), atol=1e-6
    )


def test_apply_rotary_interleaved_matches_the_native_rotary() -> None:
    """Adjacent-pair tables (TransformerLens-native) rotate as the native module does,
    partial rotary included (rotary_dim 8 of d_head 12)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native.model import NativeRotary

    cfg = TransformerBridgeConfig(
        d_model=24, d_head=12, n_heads=2, n_layers=1, n_ctx=16, d_vocab=8, rotary_dim=8,
        positional_embedding_type="rotary",
    )  # fmt: skip
    rotary = NativeRotary(cfg)
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 5, 12, generator=gen), torch.randn(2, 1, 5, 12, generator=gen)
    want_q, want_k = rotary.apply_rope(q, k)
    tables = RotaryTables(rotary.cos_cached[None, :5], rotary.sin_cached[None, :5], True)
    assert torch.allclose(apply_rotary(q.transpose(1, 2), tables), want_q.transpose(1, 2))
    assert torch.allclose(apply_rotary(k.transpose(1, 2), tables), want_k.transpose(1, 2))
    assert torch.equal(rotate_pairs(torch.arange(4.0)), torch.tensor([-1.0, 0.0, -3.0, 2.0]))


@pytest.mark.parametrize("model_name", ["attn_model", "mlp_model", "gqa_model", "llama_model"])
def test_fast_path_equals_the_per_edge_reference(model_name, batch, request, monkeypatch) -> None:
    """One matmul per layer, chunked over upstream nodes, gives the per-edge numbers, at the
    clean run and at a partly ablated EAP-IG run (channel inputs differ there)."""
    task = build_task(request.getfixturevalue(model_name), batch, with_gradients=True)
    ig_run = task.gradient_run(ablate=0.4 * task.graph.dense(torch.ones(task.graph.n_edges)))
    for run in (task.clean_gradients, ig_run):
        diff = task.ablated - run.outputs
        dense = torch.einsum("bpud,bptd->ut", diff, run.input_grads)
        want = apply_qk_fix_reference(dense, task.patcher, run, diff)
        assert not torch.equal(want, dense)
        kernels = [("projection", 1)]  # the score-space kernel also with 1 and 3 row blocks
        kernels += [("scores", n) for n in (1, 2, 3)] if run.rotary is None else []
        for (kernel, blocks), elements in itertools.product(kernels, (qk_fix.CHUNK_ELEMENTS, 1)):
            monkeypatch.setattr(qk_fix, "KERNEL", kernel)
            monkeypatch.setattr(qk_fix, "CAUSAL_BLOCKS", blocks)
            monkeypatch.setattr(qk_fix, "CHUNK_ELEMENTS", elements)  # 1: one node per chunk
            got = apply_qk_fix(dense, task.patcher, run, diff)
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))


def _break_attention_scale(monkeypatch) -> None:
    """Make the recomputed attention differ from the model's, as ALiBi or soft-capping would."""
    monkeypatch.setattr(qk_fix, "attention_scale", lambda patcher: 1.0)


@pytest.mark.parametrize("method", ["eap", "eap-ig"])
def test_unsupported_attention_falls_back_to_linear_scores(
    method, attn_model, batch, monkeypatch, caplog
) -> None:
    linear = discover(attn_model, batch, DiscoverySettings(method=method, qk_fix=False))
    assert linear.summary["qk_fix"] is False
    _break_attention_scale(monkeypatch)
    task = build_task(attn_model, batch, with_gradients=True)
    with pytest.raises(QKFixUnsupported, match="not softmax"):
        check_attention(task.patcher, task.clean_gradients)
    with caplog.at_level(logging.WARNING, logger="analysis.circuits.qk_fix"):
        d = discover(attn_model, batch, DiscoverySettings(method=method))
    assert d.summary["qk_fix"].startswith("not applied: layer 0's attention pattern")
    assert "QK fix not applied" in caplog.text
    assert torch.equal(d.scores, linear.scores)
    if method == "eap-ig":  # the library call falls back the same way
        assert torch.equal(eap_ig_scores(d.task), linear.scores)
