"""The explore job against TransformerLens on the same model: patterns are run_with_cache's,
scores are analysis.heads' statistics of them, DLA is logit_attrs(stack_head_results) and
decompose_resid's, the logit lens ends at the model's own logits; bad text is one line."""

from __future__ import annotations

import pytest
import torch

from analysis.explore import ExploreInputError, explore, next_token_id, tokenize
from analysis.heads import pattern_statistics
from analysis.hooks import HookSite
from analysis.models import load_model
from tests.analysis.arch_fixtures import arch_model  # noqa: F401

ZOO = "zoo:induction-2l"


@pytest.fixture(scope="module")
def zoo():
    return load_model(ZOO)


def _tl_dla(model, tokens: list[int], target: int) -> torch.Tensor:
    _, cache = model.run_with_cache(torch.tensor([tokens]))
    stack = cache.stack_head_results(layer=-1, pos_slice=-1)
    attrs = cache.logit_attrs(stack, tokens=torch.tensor([target]), pos_slice=-1)
    return attrs.reshape(model.cfg.n_layers, -1)


def test_patterns_and_scores_are_run_with_caches(zoo):
    tokens = tokenize(zoo, "abcdeabcde", 256)
    found = explore(zoo, tokens)
    _, cache = zoo.run_with_cache(torch.tensor([tokens]))
    want = torch.stack([cache[HookSite("pattern", i).name][0] for i in range(zoo.cfg.n_layers)])
    assert found.patterns.shape == (2, 4, len(tokens), len(tokens))
    assert torch.allclose(found.patterns, want.float(), atol=1e-6)
    ref = pattern_statistics(want, torch.tensor(tokens))
    for name in ("prev_token_score", "induction_score", "duplicate_token_score", "bos_mass",
                 "entropy"):  # fmt: skip
        assert torch.allclose(found.scores[name], ref[name], atol=1e-6), name
    diag = want.float().diagonal(dim1=-2, dim2=-1).mean(-1)
    assert torch.allclose(found.scores["self_mass"], diag, atol=1e-6)
    assert found.strings[:3] == ["<bos>", "a", "b"]
    # the induction model's layer-1 heads attend from the repeat to the token after its twin
    assert found.targets[0].text == "a"
    assert float(found.scores["induction_score"][1].min()) > 20 * float(
        found.scores["induction_score"][0].max()
    )
    assert int(found.patterns[1, 1, -1].argmax()) == 1 + tokens[1:].index(tokens[-1]) + 1


def test_induction_scores_are_left_out_where_no_token_repeats(zoo):
    found = explore(zoo, tokenize(zoo, "abcdefg", 256))
    assert "induction_score" not in found.scores
    assert "duplicate_token_score" not in found.scores
    assert "prev_token_score" in found.scores


def test_dla_equals_transformer_lens(arch_model):  # noqa: F811
    tokens = [0, 5, 9, 3, 5, 9, 3]
    target = 7
    found = explore(arch_model, tokens, next_id=target)
    top = int(found.final_logits.argmax())
    assert found.targets[0].id == top
    assert (found.dla["top"] - _tl_dla(arch_model, tokens, top)).abs().max() <= 1e-4
    assert (found.dla["next"] - _tl_dla(arch_model, tokens, target)).abs().max() <= 1e-4
    _, cache = arch_model.run_with_cache(torch.tensor([tokens]))
    stack, labels = cache.decompose_resid(layer=-1, pos_slice=-1, mode="mlp", return_labels=True)
    ref = dict(zip(labels, cache.logit_attrs(stack, tokens=torch.tensor([target]), pos_slice=-1),
                   strict=True))  # fmt: skip
    comp = found.components["next"]
    assert comp["embed"] == pytest.approx(float(ref["embed"]), abs=1e-4)
    for layer in range(arch_model.cfg.n_layers):
        if f"mlp {layer}" in comp:
            assert comp[f"mlp {layer}"] == pytest.approx(float(ref[f"{layer}_mlp_out"]), abs=1e-4)


def test_logit_lens_ends_at_the_models_logits(zoo):
    tokens = tokenize(zoo, "abcabc", 256)
    target = next_token_id(zoo, "x")
    found = explore(zoo, tokens, next_id=target)
    logits = zoo(torch.tensor([tokens]))[0, -1]
    probs = logits.softmax(-1)
    assert len(found.lens["next"]) == zoo.cfg.n_layers + 1
    final = found.lens["next"][-1]
    assert final["logit"] == pytest.approx(float(logits[target]), abs=1e-4)
    assert final["prob"] == pytest.approx(float(probs[target]), abs=1e-5)
    assert final["rank"] == int((logits > logits[target]).sum())
    assert found.lens["top"][-1]["rank"] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "text: it is empty; type or paste some text"),
        ("ab" * 40, "text: it is 81 tokens, more than the model's context of 64; shorten it"),
        ("abC", "text: characters 'C' are not in the model's vocabulary; remove them"),
    ],
)
def test_bad_text_is_one_line(zoo, text, message):
    with pytest.raises(ExploreInputError) as err:
        tokenize(zoo, text, 256)
    assert str(err.value) == message


def test_max_tokens_and_a_next_token_of_two_tokens_are_refused(zoo):
    with pytest.raises(ExploreInputError, match="more than max_tokens=8; shorten it or raise"):
        tokenize(zoo, "abcdefghij", 8)
    with pytest.raises(ExploreInputError, match=r"'ab' is 2 tokens for this model \('a', 'b'\)"):
        next_token_id(zoo, "ab")
