from __future__ import annotations

import pytest
import torch

from analysis.sae.activations import (
    ActivationStream,
    PromptTokens,
    RepeatedTokens,
    TextFileTokens,
    TokenSourceError,
    collect_tokens,
    flatten_heads,
    hook_z,
)
from storage.records import PairIn


def test_repeated_tokens_repeat_with_their_period(model):
    source = RepeatedTokens.for_model(model, 40)
    tokens = source.sample(16, torch.Generator().manual_seed(0))
    assert tokens.shape == (16, 40)
    assert (tokens[:, 0] == model.tokenizer.bos_token_id).all()
    specials = set(model.tokenizer.all_special_ids)
    assert not any(int(t) in specials for t in tokens[:, 1:].flatten())
    for row in tokens[:, 1:]:
        periods = [p for p in range(5, 21) if torch.equal(row[p:], row[:-p])]
        assert periods, "every sequence repeats with some period in 5..20"


def test_repeated_tokens_refuse_a_context_longer_than_the_model(model):
    with pytest.raises(TokenSourceError, match="exceeds the model's context 64"):
        RepeatedTokens.for_model(model, 65)


def test_hook_z_matches_run_with_cache(model):
    tokens = torch.randint(2, 31, (3, 12))
    _, cache = model.run_with_cache(tokens)
    got = hook_z(model, tokens, [0, 1])
    for layer in (0, 1):
        torch.testing.assert_close(got[layer], cache[f"blocks.{layer}.attn.hook_z"])
    assert flatten_heads(got[1]).shape == (3, 12, 4 * 8)
    assert not any(h.fwd_hooks for h in model.hook_dict.values())  # the early stop cleans up
    # head-major flattening: head h owns columns h*d_head:(h+1)*d_head
    torch.testing.assert_close(flatten_heads(got[1])[..., 8:16], got[1][:, :, 1])


def test_activation_stream_serves_real_positions_only(model):
    pairs = [PairIn("abcab", "abcxy", "c", "z"), PairIn("ab", "xy", "a", "z")]
    source = PromptTokens(model, pairs)
    assert source.mask.sum() == 2 * (6 + 3)  # BOS + chars, clean and corrupted
    stream = ActivationStream(model, source, [1], batch_tokens=4, seqs_per_forward=4, seed=0)
    batches = [next(stream)[1] for _ in range(9)]
    rows = torch.cat(batches)
    z = flatten_heads(hook_z(model, source.tokens, [1])[1])[source.mask]
    # every served row is one of the real-position activations (up to row order)
    dist = torch.cdist(rows, z, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert dist.max() < 1e-5
    assert stream.tokens_seen == 36


def test_text_file_windows_start_with_bos(model, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    source = TextFileTokens(model, path, 16)
    assert source.tokens.shape[1] == 16
    assert (source.tokens[:, 0] == model.tokenizer.bos_token_id).all()
    chars = model.tokenizer.convert_ids_to_tokens(source.tokens[0, 1:].tolist())
    assert "".join(chars) == "the quick brown"


def test_text_file_errors_name_the_fix(model, tmp_path):
    with pytest.raises(TokenSourceError, match="does not exist"):
        TextFileTokens(model, tmp_path / "missing.txt", 16)
    short = tmp_path / "short.txt"
    short.write_text("abc")
    with pytest.raises(TokenSourceError, match="fewer than one window"):
        TextFileTokens(model, short, 16)


def test_collect_tokens_gives_enough_tokens(model):
    batch = collect_tokens(RepeatedTokens.for_model(model, 32), 100, seed=0, seqs=2)
    assert batch.n_tokens >= 100
    assert batch.tokens.shape[1] == 32
