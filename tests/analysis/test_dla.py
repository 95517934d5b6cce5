"""DLA == TransformerLens' stack_head_results / decompose_resid + logit_attrs, 3 architectures."""

import pytest

from analysis.dla import direct_logit_attribution
from tests.analysis.arch_fixtures import arch_model, pair_batch  # noqa: F401


def test_dla_equals_transformer_lens(arch_model):  # noqa: F811
    batch = pair_batch(n_pairs=3, n_pos=6)
    ours = direct_logit_attribution(arch_model, batch)
    _, cache = arch_model.run_with_cache(batch.clean)
    kw = dict(tokens=batch.correct, incorrect_tokens=batch.incorrect, pos_slice=-1)
    heads = cache.logit_attrs(cache.stack_head_results(layer=-1, pos_slice=-1), **kw)
    n_layers = arch_model.cfg.n_layers
    assert (heads.reshape(n_layers, -1, batch.n_pairs) - ours.heads).abs().max() <= 1e-4
    stack, labels = cache.decompose_resid(layer=-1, pos_slice=-1, mode="mlp", return_labels=True)
    ref = dict(zip(labels, cache.logit_attrs(stack, **kw), strict=True))
    assert (ref["embed"] - ours.embed).abs().max() <= 1e-4
    if "pos_embed" in ref:
        assert (ref["pos_embed"] - ours.pos_embed).abs().max() <= 1e-4
    if ours.mlps is not None:
        for layer in range(n_layers):
            assert (ref[f"{layer}_mlp_out"] - ours.mlps[layer]).abs().max() <= 1e-4


def test_logit_lens_ends_at_the_model_logit_diff(arch_model):  # noqa: F811
    batch = pair_batch()
    ours = direct_logit_attribution(arch_model, batch)
    logits = arch_model(batch.clean)[:, -1]
    want = logits.gather(1, batch.correct[:, None]) - logits.gather(1, batch.incorrect[:, None])
    assert ours.logit_lens.shape[0] == arch_model.cfg.n_layers + 1
    assert ours.logit_lens[-1].tolist() == pytest.approx(want[:, 0].tolist(), abs=1e-4)
