"""More architectures against TransformerLens' own functions on the same tiny random models.

Parallel attention + MLP with partial rotary (GPT-NeoX / Pythia: rotate-half on half of each
head; GPT-J: adjacent pairs given as (sin, cos)), Qwen2 (GQA, q/k/v biases) and Mistral (GQA):
circuit edge patching equals patches made by hand with hooks, EAP is the linearisation of exact
edge patching, EAP-IG is complete, batched ACDC equals one-edge-at-a-time ACDC, the QK fix equals
finite differences along the model's own pattern change, the prefix-skip patching kernel runs
and equals exact patching, exact patching equals ``transformer_lens.patching``, DLA equals the
cache's ``stack_head_results``/``decompose_resid``/``logit_attrs`` and head scores equal
``detect_head``. Gemma-2 (soft-capping, GQA, post-norms): circuit discovery is refused by
name, patching falls back to an exact path, DLA (post-norm scales frozen) sums to the pre-cap
logit difference.
"""

from __future__ import annotations

import pytest
import torch
import transformer_lens.patching as tlp
from transformer_lens.head_detector import detect_head

from analysis import heads, hooks
from analysis.circuits.acdc import acdc, acdc_reference
from analysis.circuits.eap import eap_scores
from analysis.circuits.eap_ig import eap_ig_scores
from analysis.circuits.exact import exact_scores
from analysis.circuits.graph import CircuitGraph, CircuitGraphError, graph_for_model
from analysis.circuits.intervention import EdgePatcher, check_decomposition
from analysis.circuits.qk_fix import QKFixUnsupported, check_attention
from analysis.circuits.task import build_task
from analysis.dla import direct_logit_attribution
from analysis.models import model_facts
from analysis.patching.exact import exact_patch, prepare
from analysis.patching.fast import fast_patch
from analysis.patching.replay import BlockReplay
from analysis.patching.strategies import PatchTarget
from analysis.prompt_batch import pair_batch_from_tokens
from tests.analysis import heads_fixtures as F
from tests.analysis.arch_fixtures import (  # noqa: F401
    arch_model,
    dla_total,
    last_logits,
    logit_diff,
    pair_batch,
)
from tests.analysis.circuits.test_qk_fix import _assert_finite_differences

torch.set_num_threads(1)
MORE_ARCHS = ("neox", "gptj", "qwen2", "mistral")
TOL = 1e-4


@pytest.fixture(scope="module", params=MORE_ARCHS)
def model(request, tmp_path_factory):
    build = getattr(F, f"{request.param}_style")
    return build(tmp_path_factory.mktemp(request.param), norms=True)


@pytest.fixture(scope="module")
def gemma2(tmp_path_factory):
    return F.gemma2_style(tmp_path_factory.mktemp("gemma2"), norms=True)


def ragged(seed: int = 0, lengths=(7, 5, 6), at=(1, 3)):
    g = torch.Generator().manual_seed(seed)
    clean, corrupted = [], []
    for n in lengths:
        c = torch.randint(2, F.VOCAB, (n,), generator=g).tolist()
        k = list(c)
        for p in at:
            k[p] = (c[p] + 7) % (F.VOCAB - 2) + 2
        clean.append(c)
        corrupted.append(k)
    correct = torch.randint(2, F.VOCAB, (len(lengths),), generator=g)
    incorrect = (correct + 3) % (F.VOCAB - 2) + 2
    return pair_batch_from_tokens(clean, corrupted, correct.tolist(), incorrect.tolist(), pad_id=1)


# ---- the circuit graph --------------------------------------------------------------------
def test_a_parallel_block_has_no_edges_from_its_heads_into_its_mlp() -> None:
    seq, par = CircuitGraph(2, 4, 4, True), CircuitGraph(2, 4, 4, True, parallel=True)
    assert par.nodes == seq.nodes and [c.name for c in par.channels] == [
        c.name for c in seq.channels
    ]
    assert par.n_edges == seq.n_edges - 2 * 4  # each layer: 4 head -> MLP edges fewer
    assert ("a0.h1", "m0") in seq.edges and ("a0.h1", "m0") not in par.edges
    assert ("input", "m0") in par.edges and ("a0.h1", "m1") in par.edges
    assert ("m0", "m1") in par.edges and ("a1.h3", "logits") in par.edges


def test_graph_flags_follow_the_model(model) -> None:
    facts = model_facts(model)
    assert not facts["post_norms"] and facts["attn_soft_cap"] is None
    assert facts["parallel_attn_mlp"] == graph_for_model(model).parallel
    graph = graph_for_model(model)
    assert graph.parallel == (model.cfg.architecture in ("GPTNeoXForCausalLM", "GPTJForCausalLM"))
    assert graph.gqa == (model.cfg.architecture in ("Qwen2ForCausalLM", "MistralForCausalLM"))


def test_a_sequential_neox_is_not_treated_as_parallel(tmp_path) -> None:
    """GPT-NeoX with use_parallel_residual=False: the MLP reads resid_mid, as in GPT-2."""
    seq = F.neox_style(tmp_path, norms=True, parallel=False)
    graph, batch = graph_for_model(seq), ragged()
    assert not graph.parallel and ("a0.h1", "m0") in graph.edges
    assert check_decomposition(EdgePatcher(seq, graph), batch.clean) <= TOL
    setup = prepare(seq, batch, "logit_diff")
    replay = BlockReplay(seq, setup.target_tokens, batch.last)
    assert replay.suffix().supported, replay.suffix().reason
    target = PatchTarget("z", True)
    fast = fast_patch(setup, target, replay=replay, chunk=5)
    assert (fast.values - exact_patch(setup, target).values).abs().max() <= TOL


# ---- edge patching == hooks made by hand ----------------------------------------------------
def _mask(graph, edges) -> torch.Tensor:
    per_edge = torch.zeros(graph.n_edges)
    for e in edges:
        per_edge[graph.edge_index(*e)] = 1.0
    return graph.dense(per_edge)[None]


def test_edge_patching_equals_hooks_made_by_hand(model) -> None:
    """Every edge into a channel ablated = that head's q (the MLP's output) patched with its
    corrupted value; every edge out of a head ablated = its z patched. On a parallel block the
    second holds only because a head does not feed its own layer's MLP."""
    graph, batch = graph_for_model(model), ragged()
    patcher = EdgePatcher(model, graph)
    assert check_decomposition(patcher, batch.clean) <= TOL
    _, cache = model.run_with_cache(batch.corrupted)
    cases = [
        ([e for e in graph.edges if e[1] == "a1.h2<q>"], hooks.site("q", 1).name, 2),
        ([e for e in graph.edges if e[1] == "m1"], hooks.site("mlp_out", 1).name, None),
        ([e for e in graph.edges if e[0] == "a0.h3"], hooks.z(0).name, 3),
        ([e for e in graph.edges if e[0] == "a0.h0"], hooks.z(0).name, 0),
    ]
    with torch.no_grad():
        ablated = patcher.run(batch.corrupted).outputs
        for edges, name, head in cases:

            def patch(t, hook, name=name, head=head):
                if head is None:
                    return cache[name]
                t = t.clone()
                t[:, :, head] = cache[name][:, :, head]
                return t

            with model.hooks(fwd_hooks=[(name, patch)]):
                want = model(batch.clean)
            got = patcher.run(batch.clean, ablated, _mask(graph, edges)).logits
            assert (got - want).abs().max() <= TOL, (name, head)
            assert (want - model(batch.clean)).abs().max() > 1e-3  # the patch does something


# ---- circuit discovery methods ------------------------------------------------------------
def test_eap_is_the_linearisation_of_exact_edge_patching(model) -> None:
    batch = ragged(seed=1)
    task = build_task(model, batch, with_gradients=True)
    eap = eap_scores(task, qk_fix=False)
    small = build_task(model, batch)
    eps = 1e-2
    small.ablated = small.clean_outputs + eps * (task.ablated - task.clean_outputs)
    fd = exact_scores(small) / eps
    assert float((fd - eap).abs().max() / eap.abs().max()) < 0.03
    assert torch.equal(fd.abs().argsort()[-5:], eap.abs().argsort()[-5:])  # the same top edges


def test_eap_ig_is_complete(model) -> None:
    """All edge scores sum to m(every edge ablated) - m(clean), with error O(1/steps^2)."""
    gaps = []
    for steps in (2, 8):
        task = build_task(model, ragged(seed=2))
        scores = eap_ig_scores(task, steps, path="edges", qk_fix=False)
        gaps.append(abs(float(scores.sum()) - (task.metric_corrupt - task.metric_clean)))
    assert gaps[1] < gaps[0] / 4 and gaps[1] < 0.02, gaps


def test_batched_acdc_equals_one_edge_at_a_time(model) -> None:
    task = build_task(model, ragged(seed=3, lengths=(6, 5)))
    fast, ref = acdc(task, 0.02), acdc_reference(task, 0.02)
    assert torch.equal(fast.kept, ref.kept)
    assert 0 < int(ref.kept.sum()) < task.graph.n_edges  # tau prunes some edges, not all
    assert fast.damage == pytest.approx(ref.damage, abs=1e-5)


def test_qk_fix_equals_finite_differences_of_the_pattern_change(model) -> None:
    task = build_task(model, ragged(seed=4, lengths=(6, 6)), with_gradients=True)
    run = task.clean_gradients
    assert run is not None and run.rotary is not None
    assert run.rotary.interleaved == (model.cfg.architecture == "GPTJForCausalLM")
    check_attention(task.patcher, run)  # the partial / pairwise rotary is reproduced
    fixed = eap_scores(task, qk_fix=True)
    assert task.qk_fix_skipped is None
    graph = task.graph
    qk = [e for e in range(graph.n_edges)
          if graph.channels[int(graph.edge_target[e])].kind in ("q", "k")]  # fmt: skip
    _assert_finite_differences(task, fixed, qk[:: max(1, len(qk) // 6)][:6])


# ---- patching -------------------------------------------------------------------------------
def test_prefix_skip_patching_equals_exact(model) -> None:
    setup = prepare(model, ragged(), "logit_diff")
    replay = BlockReplay(model, setup.target_tokens, setup.batch.last)
    suffix = replay.suffix()
    assert replay.supported and suffix.supported, suffix.reason
    for kind, per_pos in [("z", True), ("q", True), ("k", False), ("v", True), ("resid_pre", True)]:
        target = PatchTarget(kind, per_pos)
        fast = fast_patch(setup, target, replay=replay, chunk=5)
        exact = exact_patch(setup, target)
        assert (fast.values - exact.values).abs().max() <= TOL, (kind, per_pos)
        assert fast.normalised.abs().max() > 1e-3, (kind, per_pos)


def test_exact_patching_equals_transformer_lens(model) -> None:
    _assert_exact_patching_equals_transformer_lens(model)


def _assert_exact_patching_equals_transformer_lens(model) -> None:
    batch = pair_batch(n_pairs=2, n_pos=4, corrupt_at=1)
    setup = prepare(model, batch, "logit_diff")
    _, clean_cache = model.run_with_cache(batch.clean)

    def metric(logits):
        rows = torch.arange(logits.shape[0])
        last = logits[rows, batch.last]
        diff = last.gather(1, batch.correct[:, None]) - last.gather(1, batch.incorrect[:, None])
        return setup.baseline.normalise(diff.mean())

    for kind, fn in [("z", tlp.get_act_patch_attn_head_out_all_pos),
                     ("v", tlp.get_act_patch_attn_head_v_all_pos)]:  # fmt: skip
        target = PatchTarget(kind, False)
        exact = exact_patch(setup, target)
        shaped = exact.tl_shaped(model.cfg.n_layers, batch.n_pos, target.n_heads(model))
        tl = fn(model, batch.corrupted, clean_cache, metric)
        assert (shaped - tl).abs().max() <= TOL, kind


# ---- DLA and head scores ------------------------------------------------------------------
def test_dla_equals_transformer_lens(model) -> None:
    batch = pair_batch(n_pairs=3, n_pos=6)
    ours = direct_logit_attribution(model, batch)
    _, cache = model.run_with_cache(batch.clean)
    kw = dict(tokens=batch.correct, incorrect_tokens=batch.incorrect, pos_slice=-1)
    n_layers = model.cfg.n_layers
    ref_heads = cache.logit_attrs(cache.stack_head_results(layer=-1, pos_slice=-1), **kw)
    assert (ref_heads.reshape(n_layers, -1, batch.n_pairs) - ours.heads).abs().max() <= TOL
    stack, labels = cache.decompose_resid(layer=-1, pos_slice=-1, mode="mlp", return_labels=True)
    ref = dict(zip(labels, cache.logit_attrs(stack, **kw), strict=True))
    assert (ref["embed"] - ours.embed).abs().max() <= TOL
    assert ours.mlps is not None
    for layer in range(n_layers):
        assert (ref[f"{layer}_mlp_out"] - ours.mlps[layer]).abs().max() <= TOL
    logits = model(batch.clean)[:, -1]
    want = logits.gather(1, batch.correct[:, None]) - logits.gather(1, batch.incorrect[:, None])
    assert ours.logit_lens[-1].tolist() == pytest.approx(want[:, 0].tolist(), abs=TOL)


def test_head_scores_equal_detect_head(model) -> None:
    _assert_head_scores_equal_detect_head(model)


def test_head_scores_equal_detect_head_on_the_first_three(arch_model) -> None:  # noqa: F811
    _assert_head_scores_equal_detect_head(arch_model)


def _assert_head_scores_equal_detect_head(model) -> None:
    prompts = ["abcdeabcde", "xyzq xyzq", "hello hello"]
    toks = [model.to_tokens(p)[0] for p in prompts]
    padded = torch.nn.utils.rnn.pad_sequence(toks, batch_first=True, padding_value=1)
    stats = heads.average_statistics(heads.prompt_patterns(model, padded, [len(t) for t in toks]),
                                     padded)  # fmt: skip
    for ours, theirs in [("prev_token_score", "previous_token_head"),
                         ("induction_score", "induction_head")]:  # fmt: skip
        assert (stats[ours] - detect_head(model, prompts, theirs)).abs().max() < 1e-5, ours


# ---- Gemma-2: refused by name, an exact fallback, or frozen norm scales -------------------------
def test_gemma2_circuits_are_refused_naming_the_post_norms(gemma2) -> None:
    facts = model_facts(gemma2)
    assert facts["post_norms"] and not facts["parallel_attn_mlp"]
    assert (facts["attn_soft_cap"], facts["logit_soft_cap"]) == (5.0, 10.0)
    with pytest.raises(CircuitGraphError, match="post-attention/post-MLP norms"):
        graph_for_model(gemma2)


def test_gemma2_dla_sums_to_the_pre_cap_logit_diff(gemma2) -> None:
    """The post-norms' scales frozen, soft-capping left out (tests/analysis/test_dla_post_norm.py
    checks each head against a hand computation)."""
    batch = ragged()
    ours = direct_logit_attribution(gemma2, batch)
    want = logit_diff(last_logits(gemma2, batch)[1], batch)
    assert ours.mlps is not None and ours.pos_embed is None
    assert (dla_total(ours) - want).abs().max() <= TOL


def test_gemma2_patching_falls_back_to_an_exact_path(gemma2) -> None:
    """The prefix-skip kernel refuses by name; the layer replay (the model's own blocks) is
    used instead and equals exact patching."""
    setup = prepare(gemma2, ragged(), "logit_diff")
    replay = BlockReplay(gemma2, setup.target_tokens, setup.batch.last)
    suffix = replay.suffix()
    assert replay.supported, replay.reason  # the layer replay applies the final soft-capping
    assert not suffix.supported and "attention-score soft-capping" in suffix.reason
    for kind in ("z", "k"):
        target = PatchTarget(kind, True)
        fast = fast_patch(setup, target, replay=replay, chunk=5)
        assert (fast.values - exact_patch(setup, target).values).abs().max() <= TOL, kind
        assert fast.normalised.abs().max() > 1e-3, kind
    _assert_exact_patching_equals_transformer_lens(gemma2)


def test_gemma2_head_scores_equal_detect_head(gemma2) -> None:
    prompts = ["abcabc", "hello hello"]
    toks = [gemma2.to_tokens(p)[0] for p in prompts]
    padded = torch.nn.utils.rnn.pad_sequence(toks, batch_first=True, padding_value=1)
    stats = heads.average_statistics(heads.prompt_patterns(gemma2, padded, [len(t) for t in toks]),
                                     padded)  # fmt: skip
    ref = detect_head(gemma2, prompts, "previous_token_head")
    assert (stats["prev_token_score"] - ref).abs().max() < 1e-5


def test_qk_fix_refuses_attention_soft_capping_by_name(model) -> None:
    """A soft-capped model whose graph is otherwise computable (the cap set on this model's
    config): the QK fix is refused naming the cap, and EAP falls back to linear q/k scores."""
    task = build_task(model, ragged(seed=4, lengths=(5, 5)), with_gradients=True)
    model.cfg.attn_scores_soft_cap = 5.0
    try:
        with pytest.raises(QKFixUnsupported, match="attention-score soft-capping"):
            check_attention(task.patcher, task.clean_gradients)
        eap_scores(task, qk_fix=True)
        assert "soft-capping" in (task.qk_fix_skipped or "")
    finally:
        model.cfg.attn_scores_soft_cap = -1.0
