"""Head statistics == transformer_lens.head_detector.detect_head; weight scores sane."""

import pytest
import torch
from transformer_lens.head_detector import detect_head

from analysis import heads
from tests.analysis.heads_fixtures import native_attn_only

PROMPTS = ["abcdeabcde", "xyzq xyzq", "hello hello", "ab"]


@pytest.fixture(scope="module")
def model():
    return native_attn_only()


def test_head_type_scores_equal_detect_head(model):
    toks = [model.to_tokens(p)[0] for p in PROMPTS]
    padded = torch.nn.utils.rnn.pad_sequence(toks, batch_first=True, padding_value=1)
    patterns = heads.prompt_patterns(model, padded, [len(t) for t in toks])
    stats = heads.average_statistics(patterns, padded)
    for ours, theirs in [("prev_token_score", "previous_token_head"),
                         ("duplicate_token_score", "duplicate_token_head"),
                         ("induction_score", "induction_head")]:  # fmt: skip
        ref = detect_head(model, PROMPTS, theirs)
        assert (stats[ours] - ref).abs().max() < 1e-5, ours


def test_pattern_statistics_on_known_patterns():
    n = 4
    prev = torch.zeros(1, 1, n, n)
    prev[0, 0, 0, 0] = 1
    prev[0, 0, torch.arange(1, n), torch.arange(n - 1)] = 1
    s = heads.pattern_statistics(prev, torch.tensor([0, 5, 6, 5]))
    assert s["prev_token_score"].item() == pytest.approx(3 / 4)
    assert s["entropy"].item() == pytest.approx(0.0, abs=1e-6)
    assert s["mean_distance"].item() == pytest.approx(3 / 4)
    assert s["bos_mass"].item() == pytest.approx(1 / 3)
    uniform = torch.tril(torch.ones(n, n))
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]
    s = heads.pattern_statistics(uniform, torch.tensor([0, 5, 6, 5]))
    want = sum(torch.log(torch.tensor(float(k))) for k in range(1, n + 1)) / n
    assert s["entropy"].item() == pytest.approx(want.item(), rel=1e-5)
    assert s["duplicate_token_score"].item() == pytest.approx((1 / 4) / 4)  # q=3 -> k=1


def test_ov_copying_score_signs(model):
    w_u, w_e = model.W_U.float(), model.W_E.float()
    scores = heads.ov_copying_scores(model)
    assert scores.shape == (2, 4) and scores.abs().max() <= 1 + 1e-5
    # brute force on the full vocab x vocab OV circuit of one head
    full = w_e @ model.W_V[1, 2].float() @ model.W_O[1, 2].float() @ w_u
    eig = torch.linalg.eigvals(full.double())
    assert scores[1, 2].item() == pytest.approx((eig.sum().real / eig.abs().sum()).item(), 1e-4)


def test_successor_score_in_unit_interval(model):
    scores = heads.successor_scores(model)  # letters a..z are single tokens
    assert scores is not None and ((scores >= 0) & (scores <= 1)).all()
    assert heads.ordinal_token_sequences(model)[0][:3] == [2, 3, 4]
