"""Exact patching == transformer_lens.patching, fast == exact, on three architectures."""

import pytest
import torch
import transformer_lens.patching as tlp

from analysis.metrics import MetricUndefined, last_logits, metric_per_prompt
from analysis.patching.exact import ActivationNotFinite, exact_patch, prepare
from analysis.patching.fast import fast_patch
from analysis.patching.replay import BlockReplay
from analysis.patching.strategies import PatchTarget
from tests.analysis.arch_fixtures import arch_model, pair_batch  # noqa: F401

TL_FUNCTIONS = {
    ("z", False): tlp.get_act_patch_attn_head_out_all_pos,
    ("z", True): tlp.get_act_patch_attn_head_out_by_pos,
    ("q", False): tlp.get_act_patch_attn_head_q_all_pos,
    ("q", True): tlp.get_act_patch_attn_head_q_by_pos,
    ("k", False): tlp.get_act_patch_attn_head_k_all_pos,
    ("k", True): tlp.get_act_patch_attn_head_k_by_pos,
    ("v", False): tlp.get_act_patch_attn_head_v_all_pos,
    ("v", True): tlp.get_act_patch_attn_head_v_by_pos,
    ("pattern", False): tlp.get_act_patch_attn_head_pattern_all_pos,
    ("pattern", True): tlp.get_act_patch_attn_head_pattern_by_pos,
    ("resid_pre", True): tlp.get_act_patch_resid_pre,
}
TOL = 1e-4


def _tl_metric(setup, name):
    batch = setup.batch

    def metric(logits):
        ll = last_logits(logits, batch.last)
        return setup.baseline.normalise(metric_per_prompt(name, ll, batch, setup.clean_last).mean())

    return metric


@pytest.mark.parametrize("metric", ["logit_diff", "prob", "kl"])
def test_exact_and_fast_equal_transformer_lens(arch_model, metric):  # noqa: F811
    model = arch_model
    batch = pair_batch()
    setup = prepare(model, batch, metric)
    replay = BlockReplay(model, setup.target_tokens, batch.last)
    assert replay.supported, replay.reason
    kinds = TL_FUNCTIONS if metric == "logit_diff" else {("z", False), ("v", True), ("pattern", True)}
    _, clean_cache = model.run_with_cache(batch.clean)
    for kind, per_pos in kinds:
        target = PatchTarget(kind, per_pos)
        exact = exact_patch(setup, target)
        fast = fast_patch(setup, target, replay=replay, chunk=3)
        assert (exact.values - fast.values).abs().max() <= TOL, (kind, per_pos)
        tl = TL_FUNCTIONS[(kind, per_pos)](model, batch.corrupted, clean_cache, _tl_metric(setup, metric))
        mine = exact.tl_shaped(model.cfg.n_layers, batch.n_pos, target.n_heads(model))
        assert mine.shape == tl.shape
        assert (mine - tl).abs().max() <= TOL, (kind, per_pos)
        assert exact.normalised.abs().max() > 0.01  # the patch does something


def test_noising_fast_equals_exact_and_resid_at_corrupted_position(arch_model):  # noqa: F811
    batch = pair_batch()
    setup = prepare(arch_model, batch, "logit_diff", "noising")
    target = PatchTarget("resid_pre", True)
    exact = exact_patch(setup, target)
    fast = fast_patch(setup, target, chunk=4)
    assert (exact.values - fast.values).abs().max() <= TOL
    # patching the corrupted token's residual at layer 0 turns clean into corrupted
    assert exact.normalised[0, 2].item() == pytest.approx(0.0, abs=1e-4)


def test_unsupported_replay_falls_back_to_full_forwards(arch_model):  # noqa: F811
    batch = pair_batch()
    setup = prepare(arch_model, batch, "logit_diff")
    replay = BlockReplay(arch_model, setup.target_tokens, batch.last)
    replay.supported = False
    target = PatchTarget("z", False)
    fast = fast_patch(setup, target, replay=replay, chunk=2)
    assert (fast.values - exact_patch(setup, target).values).abs().max() <= TOL


def test_zero_denominator_is_reported(arch_model):  # noqa: F811
    batch = pair_batch()
    same = type(batch)(batch.clean, batch.clean, batch.lengths, batch.last, batch.correct,
                       batch.incorrect)  # fmt: skip
    with pytest.raises(MetricUndefined, match="metric logit_diff is the same"):
        prepare(arch_model, same, "logit_diff")


def test_nan_in_activations_is_detected(arch_model):  # noqa: F811
    batch = pair_batch()
    setup = prepare(arch_model, batch, "logit_diff")
    name = "blocks.1.attn.hook_z"
    bad = dict(setup.source_cache)
    bad[name] = bad[name].clone()
    bad[name][0, 0, 0, 0] = float("nan")
    broken = type(setup)(**{**setup.__dict__, "source_cache": bad})
    with pytest.raises(ActivationNotFinite, match="NaN in the source activation"):
        fast_patch(broken, PatchTarget("z", False))
    assert torch.isfinite(setup.source_cache[name]).all()
