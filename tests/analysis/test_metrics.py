import pytest
import torch

from analysis.metrics import (
    MetricUndefined,
    last_logits,
    metric_baseline,
    metric_fn,
    metric_per_prompt,
)
from analysis.prompt_batch import pair_batch_from_tokens


@pytest.fixture
def batch():
    return pair_batch_from_tokens([[0, 1, 2], [0, 3]], [[0, 1, 4], [0, 5]], [1, 2], [3, 4])


def test_last_logits_reads_each_prompts_last_position(batch):
    logits = torch.arange(2 * 3 * 6, dtype=torch.float).reshape(2, 3, 6)
    out = last_logits(logits, batch.last)
    assert torch.equal(out[0], logits[0, 2]) and torch.equal(out[1], logits[1, 1])


def test_logit_diff_prob_kl_by_hand(batch):
    torch.manual_seed(0)
    lg = torch.randn(2, 6)
    ld = metric_per_prompt("logit_diff", lg, batch)
    assert torch.allclose(ld, torch.stack([lg[0, 1] - lg[0, 3], lg[1, 2] - lg[1, 4]]))
    p = metric_per_prompt("prob", lg, batch)
    assert torch.allclose(p, torch.stack([lg[0].softmax(-1)[1], lg[1].softmax(-1)[2]]))
    ref = torch.randn(2, 6)
    kl = metric_per_prompt("kl", lg, batch, ref)
    want = torch.nn.functional.kl_div(
        lg.log_softmax(-1), ref.log_softmax(-1), log_target=True, reduction="none"
    ).sum(-1)
    assert torch.allclose(kl, want, atol=1e-6)
    assert torch.allclose(metric_per_prompt("kl", ref, batch, ref), torch.zeros(2), atol=1e-6)


def test_stacked_copies_repeat_answers(batch):
    lg = torch.randn(6, 6)
    out = metric_fn("logit_diff", batch)(lg)
    assert out.shape == (6,)
    assert torch.allclose(out[4], lg[4, 1] - lg[4, 3])


def test_normalisation_and_zero_denominator(batch):
    clean, corrupt = torch.randn(2, 6), torch.randn(2, 6)
    base = metric_baseline("logit_diff", clean, corrupt, batch)
    vals = torch.tensor([base.clean, base.corrupt])
    assert torch.allclose(base.normalise(vals), torch.tensor([1.0, 0.0]), atol=1e-5)
    same = metric_baseline("logit_diff", clean, clean, batch)
    with pytest.raises(MetricUndefined, match="metric logit_diff .* pairs 0, 1 have"):
        same.normalise(vals)


def test_unknown_metric_is_named(batch):
    with pytest.raises(ValueError, match="unknown metric 'loss'"):
        metric_fn("loss", batch)
    with pytest.raises(ValueError, match="kl metric needs the clean"):
        metric_fn("kl", batch)
