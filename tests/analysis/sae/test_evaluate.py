from __future__ import annotations

import torch

from analysis.sae.activations import flatten_heads, hook_z
from analysis.sae.evaluate import evaluate_sae, next_token_loss, reconstruct, spliced_losses


def test_evaluation_matches_a_direct_computation(model, trained, eval_tokens):
    sae = trained.saes[1].sae
    ev = evaluate_sae(model, sae, eval_tokens, seqs_per_forward=7)
    x = flatten_heads(hook_z(model, eval_tokens.tokens, [1])[1])[eval_tokens.mask].double()
    acts, recon = reconstruct(sae, x.float())
    err = (recon.double() - x).pow(2).sum()
    variance = (x - x.mean(0)).pow(2).sum()
    assert ev.n_tokens == x.shape[0]
    assert abs(ev.explained_variance - float(1 - err / variance)) < 1e-6
    assert abs(ev.mse - float(err / x.numel())) < 1e-7
    assert abs(ev.l0 - float((acts > 0).sum(-1).double().mean())) < 1e-9
    freq = (acts > 0).double().mean(0)
    torch.testing.assert_close(ev.frequency, freq.float())
    assert ev.dead_fraction == float((freq == 0).double().mean())
    assert ev.dense_fraction == float((freq > 0.1).double().mean())
    torch.testing.assert_close(ev.max_act, acts.max(0).values.float())


def test_splicing_with_the_error_term_gives_the_clean_loss(model, trained, eval_tokens):
    sae = trained.saes[1].sae
    ev = evaluate_sae(model, sae, eval_tokens)
    assert abs(ev.loss_sae_error - ev.loss_clean) < 1e-5
    assert ev.loss_sae != ev.loss_clean  # the reconstruction alone is not exact
    assert ev.loss_zero != ev.loss_clean
    expected = (ev.loss_zero - ev.loss_sae) / (ev.loss_zero - ev.loss_clean)
    assert ev.loss_recovered is not None and abs(ev.loss_recovered - expected) < 1e-12


def test_spliced_loss_is_the_models_own_loss_with_the_hook(model, trained, eval_tokens):
    sae = trained.saes[0].sae
    batch = eval_tokens
    out = spliced_losses(model, sae, batch)
    loss = model(batch.tokens, return_type="loss")  # TransformerLens' own mean next-token loss
    total, count = out["clean"]
    assert abs(total / count - float(loss)) < 1e-5

    def zero(z, hook):
        return torch.zeros_like(z)

    zero_loss = model.run_with_hooks(
        batch.tokens, return_type="loss", fwd_hooks=[("blocks.0.attn.hook_z", zero)]
    )
    assert abs(out["zero"][0] / out["zero"][1] - float(zero_loss)) < 1e-5


def test_next_token_loss_skips_padding():
    logits = torch.randn(2, 4, 5)
    tokens = torch.tensor([[0, 1, 2, 3], [0, 4, 0, 0]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    total, count = next_token_loss(logits, tokens, mask)
    assert count == 3 + 1
    logp = logits.log_softmax(-1)
    expected = -(logp[0, 0, 1] + logp[0, 1, 2] + logp[0, 2, 3] + logp[1, 0, 4])
    assert abs(total - float(expected)) < 1e-5
