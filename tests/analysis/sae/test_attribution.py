from __future__ import annotations

import torch

from analysis.sae.activations import flatten_heads, hook_z
from analysis.sae.attribution import (
    direct_feature_attribution,
    feature_pre_activation,
    head_shares,
    head_summary,
    heads_to_half,
    linear_encoder,
)
from analysis.sae.train import TrainSettings, build_training_sae


def test_shares_sum_to_one_per_feature(trained):
    for t in trained.saes.values():
        shares = head_shares(t.sae, 4)
        assert shares.shape == (48, 4)
        torch.testing.assert_close(shares.sum(-1), torch.ones(48))
        assert (shares >= 0).all()


def _hand_made_sae():
    sae = build_training_sae(8, 0, TrainSettings(d_sae=3, architecture="standard"), "m", 4)
    with torch.no_grad():
        sae.W_dec.zero_()
        sae.W_dec[0, 4:6] = torch.tensor([3.0, 4.0])  # all in head 2 (d_head 2)
        sae.W_dec[1, 0:2] = 1.0  # head 0: norm² 2
        sae.W_dec[1, 6:8] = 1.0  # head 3: norm² 2
        sae.W_dec[2, :] = 1.0  # evenly over 4 heads
    return sae


def test_shares_of_a_hand_made_decoder():
    shares = head_shares(_hand_made_sae(), 4)
    expected = torch.tensor([[0, 0, 1, 0], [0.5, 0, 0, 0.5], [0.25] * 4])
    torch.testing.assert_close(shares, expected)
    assert heads_to_half(shares).tolist() == [1, 1, 2]


def test_features_dominated_and_polysemanticity():
    sae = _hand_made_sae()
    freq = torch.tensor([0.2, 0.1, 0.0])  # feature 2 is dead
    mean_act = torch.tensor([1.0, 2.0, 0.0])
    out = head_summary(sae, 4, freq, mean_act)
    assert out["features_dominated"].tolist() == [1, 0, 1, 1]  # share >= 0.5
    # head 2 carries only feature 0, heads 0 and 3 only feature 1, head 1 nothing
    torch.testing.assert_close(out["polysemanticity"], torch.tensor([1.0, 0.0, 1.0, 1.0]))
    out = head_summary(sae, 4, torch.tensor([0.2, 0.1, 0.3]), torch.tensor([1.0, 1.0, 1.0]))
    # head 0 now carries features 1 and 2 with weights ‖W_dec slice‖ = sqrt2 and sqrt2: 2 features
    assert abs(float(out["polysemanticity"][0]) - 2.0) < 1e-5


def test_linear_encoder_reproduces_the_sae_pre_activation(trained, eval_tokens, model):
    sae = trained.saes[1].sae  # TopK: acts are the pre-activation at the top-k features
    x = flatten_heads(hook_z(model, eval_tokens.tokens[:4], [1])[1]).reshape(-1, 32)
    acts = sae.encode(x)
    pre = feature_pre_activation(sae, x)
    on = acts > 0
    torch.testing.assert_close(acts[on], pre[on], rtol=1e-5, atol=1e-6)
    assert (pre.topk(4, dim=-1).values[:, -1:] <= pre.max(-1, keepdim=True).values).all()
    standard = build_training_sae(32, 1, TrainSettings(d_sae=8, architecture="standard"), "m", 4)
    with torch.no_grad():
        standard.b_dec.normal_()
        standard.b_enc.normal_()
    _, cache = standard.run_with_cache(x)
    torch.testing.assert_close(
        feature_pre_activation(standard, x), cache["hook_sae_acts_pre"], rtol=1e-5, atol=1e-5
    )


def test_dfa_is_exact(model, trained, eval_tokens):
    sae = trained.saes[1].sae
    tokens = eval_tokens.tokens[:6]
    dst = torch.tensor([31, 20, 5, 31, 0, 17])
    features = torch.tensor([0, 3, 7, 11, 2, 47])
    dfa = direct_feature_attribution(model, sae, 1, tokens, dst, features)
    assert dfa.shape == (6, 4, 32)
    z = flatten_heads(hook_z(model, tokens, [1])[1])
    x = z[torch.arange(6), dst]
    pre = feature_pre_activation(sae, x)[torch.arange(6), features]
    _, c = linear_encoder(sae)
    torch.testing.assert_close(dfa.sum((1, 2)), pre - c[features], rtol=1e-5, atol=1e-5)
    # causal: no attribution from positions after the destination
    for i, d in enumerate(dst.tolist()):
        assert (dfa[i, :, d + 1 :] == 0).all()
