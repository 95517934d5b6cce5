"""Exact patching == transformer_lens.patching, fast == exact, on three architectures."""

import pandas as pd
import pytest
import torch
import transformer_lens.patching as tlp

from analysis.hooks import HookSite, IneffectiveHook, require_effective_hook
from analysis.metrics import MetricUndefined, last_logits, metric_per_prompt
from analysis.patching.attribution import attribution_patch_z, pearson
from analysis.patching.exact import ActivationNotFinite, exact_patch, prepare
from analysis.patching.fast import bytes_per_row, chunk_size, fast_patch, run_chunks
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


def _tl_reference(model, batch, clean_cache, metric, kind, per_pos, shape, n_sample=None):
    """TransformerLens' grid, or (for n_sample) a random sample of its cells via index_df."""
    fn = TL_FUNCTIONS[(kind, per_pos)]
    if n_sample is None:
        return None, fn(model, batch.corrupted, clean_cache, metric)
    g = torch.Generator().manual_seed(1)
    idx = torch.stack([torch.randint(0, d, (n_sample,), generator=g) for d in shape], dim=1)
    df = pd.DataFrame(idx.tolist(), columns=list(fn.keywords["index_axis_names"]))
    values = tlp.generic_activation_patch(
        model, batch.corrupted, clean_cache, metric,
        patch_setter=fn.keywords["patch_setter"],
        activation_name=fn.keywords["activation_name"],
        index_df=df,
    )  # fmt: skip
    return [tuple(r) for r in idx.tolist()], values


def _compare_with_tl(model, batch, metric, kinds, n_sample=None):
    """Fast path vs TransformerLens; per-position kinds checked on ``n_sample`` random cells."""
    setup = prepare(model, batch, metric)
    replay = BlockReplay(model, setup.target_tokens, batch.last)
    assert replay.supported, replay.reason
    _, clean_cache = model.run_with_cache(batch.clean)
    effects = {}
    for kind, per_pos in kinds:
        target = PatchTarget(kind, per_pos)
        fast = fast_patch(setup, target, replay=replay, chunk=3)
        mine = fast.tl_shaped(model.cfg.n_layers, batch.n_pos, target.n_heads(model))
        sample = n_sample if per_pos else None
        cells, tl = _tl_reference(model, batch, clean_cache, _tl_metric(setup, metric), kind,
                                  per_pos, mine.shape, sample)  # fmt: skip
        picked = mine if cells is None else torch.stack([mine[c] for c in cells])
        assert picked.shape == tl.shape, (kind, per_pos)
        assert (picked - tl).abs().max() <= TOL, (kind, per_pos)
        effects[(kind, per_pos)] = fast.normalised.abs().max().item()
    return setup, effects


@pytest.mark.slow
def test_fast_equals_transformer_lens_every_kind(arch_model):  # noqa: F811
    # all-position grids in full; per-position grids on 6 random cells each (TransformerLens
    # runs one forward per cell; the full per-position grids are checked against exact below)
    _, effects = _compare_with_tl(arch_model, pair_batch(n_pairs=2, n_pos=4, corrupt_at=1),
                                  "logit_diff", TL_FUNCTIONS, n_sample=6)  # fmt: skip
    for key, effect in effects.items():
        if key[0] == "pattern" and arch_model.cfg.architecture == "TransformerLensNative":
            continue  # see test_observation_only_pattern_hook_is_detected
        assert effect > 0.01, key  # the patch does something


@pytest.mark.parametrize("metric", ["prob", "kl"])
def test_other_metrics_equal_transformer_lens(arch_model, metric):  # noqa: F811
    _compare_with_tl(arch_model, pair_batch(), metric, [("z", False)])


def test_exact_equals_fast_and_transformer_lens(arch_model):  # noqa: F811
    batch = pair_batch(n_pairs=2, n_pos=3, corrupt_at=1)
    setup = prepare(arch_model, batch, "logit_diff")
    _, clean_cache = arch_model.run_with_cache(batch.clean)
    for kind, per_pos in [("z", False), ("k", False)]:
        target = PatchTarget(kind, per_pos)
        exact = exact_patch(setup, target)
        fast = fast_patch(setup, target, chunk=5)
        assert (exact.values - fast.values).abs().max() <= TOL
        tl = TL_FUNCTIONS[(kind, per_pos)](arch_model, batch.corrupted, clean_cache,
                                           _tl_metric(setup, "logit_diff"))  # fmt: skip
        shaped = exact.tl_shaped(arch_model.cfg.n_layers, batch.n_pos, target.n_heads(arch_model))
        assert (shaped - tl).abs().max() <= TOL


def test_observation_only_pattern_hook_is_detected(arch_model):  # noqa: F811
    tokens = pair_batch().clean
    site = HookSite("pattern", 0)
    if arch_model.cfg.architecture == "TransformerLensNative":
        with pytest.raises(IneffectiveHook, match="hook_pattern does not change the output"):
            require_effective_hook(arch_model, site, tokens)
    else:
        require_effective_hook(arch_model, site, tokens)
    require_effective_hook(arch_model, HookSite("z", 0), tokens)


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


def test_oom_halves_the_chunk_and_retries():
    calls = []

    def runner(part):
        calls.append(len(part))
        if len(part) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return torch.tensor([float(v[0]) for v in part])

    variants = [(i,) for i in range(10)]
    outputs, chunk = run_chunks(variants, 8, runner)
    assert chunk == 2 and calls[:3] == [8, 4, 2]
    assert torch.cat(outputs).tolist() == [float(i) for i in range(10)]

    def always(part):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_chunks(variants, 4, always)


def test_chunk_size_is_bounded_by_memory(arch_model):  # noqa: F811
    rows = chunk_size(arch_model, n_batch=8, n_pos=16, device="cpu")
    assert 1 <= rows <= 512 // 8
    assert bytes_per_row(arch_model, 16) > 0


def test_attribution_correlates_with_exact(arch_model):  # noqa: F811
    setup = prepare(arch_model, pair_batch(), "logit_diff")
    attr = attribution_patch_z(setup)
    exact = fast_patch(setup, PatchTarget("z")).normalised
    assert attr.shape == exact.shape
    assert pearson(attr, exact) > 0.5
    # the last layer's heads act linearly on the logits (after the final norm, nearly)
    noising = attribution_patch_z(prepare(arch_model, pair_batch(), "logit_diff", "noising"))
    assert torch.isfinite(noising).all()
