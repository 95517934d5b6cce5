from __future__ import annotations

import torch

from analysis.sae.activations import TokenBatch
from analysis.sae.attribution import direct_feature_attribution
from analysis.sae.contexts import dfa_table, feature_acts, top_activations, top_contexts


def test_top_activations_equal_a_brute_force_search(model, trained, eval_tokens):
    sae = trained.saes[1].sae
    mask = eval_tokens.mask.clone()
    mask[3, 20:] = False  # padding positions never count
    tokens = TokenBatch(eval_tokens.tokens, mask)
    top = top_activations(model, sae, 1, tokens, k=3, chunk=5)
    acts = feature_acts(model, sae, 1, tokens.tokens).masked_fill(~mask[..., None], -1)
    flat = acts.reshape(-1, acts.shape[-1])
    expected = flat.topk(3, dim=0).values.clamp_min(0)
    torch.testing.assert_close(top.value, expected)
    for f in range(0, 48, 7):
        for c in range(3):
            if top.value[c, f] > 0:
                s, p = int(top.seq[c, f]), int(top.pos[c, f])
                assert mask[s, p]
                assert acts[s, p, f] == top.value[c, f]


def test_contexts_hold_the_activating_token_and_its_activation(model, trained, eval_tokens):
    sae = trained.saes[1].sae
    top = top_activations(model, sae, 1, eval_tokens, k=2)
    live = [f for f in range(48) if top.value[0, f] > 0][:5]
    ctx = top_contexts(model, sae, 1, eval_tokens, top, live, max_prefix=8, after=2)
    for f in live:
        first = ctx[f][0]
        assert first["max"] == float(top.value[0, f])
        assert abs(first["acts"][first["pos"]] - first["max"]) < 1e-4
        assert len(first["tokens"]) == len(first["acts"]) <= 8 + 2
        s, p = first["sequence"], int(top.pos[0, f])
        token = model.tokenizer.decode([int(eval_tokens.tokens[s, p])])
        assert first["tokens"][first["pos"]] == token


def test_dfa_table_rows_sum_to_the_attribution(model, trained, eval_tokens):
    sae = trained.saes[1].sae
    top = top_activations(model, sae, 1, eval_tokens, k=2)
    live = [f for f in range(48) if top.value[1, f] > 0][:4]
    table = dfa_table(
        model, sae, 1, eval_tokens, top, live, n_contexts=2, max_prefix=64, feature_offset=100
    )
    assert set(table.columns) == {"feature", "context", "source_pos", "layer", "head", "value"}
    assert set(table["feature"]) == {f + 100 for f in live}
    f = live[0]
    s, p = int(top.seq[1, f]), int(top.pos[1, f])
    dfa = direct_feature_attribution(
        model, sae, 1, eval_tokens.tokens[[s]], torch.tensor([p]), torch.tensor([f])
    )
    rows = table[(table["feature"] == f + 100) & (table["context"] == 1)]
    assert len(rows) == 4 * (p + 1)
    assert abs(rows["value"].sum() - float(dfa.sum())) < 1e-4
