import pytest
import torch

from analysis.prompt_batch import (
    PromptBatchError,
    build_pair_batch,
    pair_batch_from_tokens,
)
from storage.records import PairRecord
from tests.analysis.heads_fixtures import native_attn_only


@pytest.fixture(scope="module")
def model():
    return native_attn_only()


def test_build_pair_batch_right_pads_and_reads_answers(model):
    pairs = [
        PairRecord("ab c", "ab d", "c", "d", index=0),
        PairRecord("abcde f", "abcdx f", "a", "b", index=1),
    ]
    b = build_pair_batch(model, pairs)
    assert b.clean.shape == (2, 8)  # bos + 7 chars
    assert b.lengths.tolist() == [5, 8]
    assert b.last.tolist() == [4, 7]
    assert b.clean[0, 5:].tolist() == [b.pad_id] * 3
    assert b.clean[0, 0].item() == model.tokenizer.bos_token_id
    assert b.correct.tolist() == [model.to_single_token("c"), model.to_single_token("a")]
    assert b.incorrect[1].item() == 3
    assert (b.clean[1] != b.corrupted[1]).sum().item() == 1


def test_answer_ids_override_tokenization(model):
    b = build_pair_batch(model, [PairRecord("ab", "ac", "long", "text", 5, 6)])
    assert b.correct.tolist() == [5] and b.incorrect.tolist() == [6]


def test_length_mismatch_names_the_pair(model):
    with pytest.raises(PromptBatchError, match="pair 7: clean tokenizes to 3 tokens"):
        build_pair_batch(model, [PairRecord("ab", "abc", "a", "b", index=7)])


def test_multi_token_answer_names_the_pair(model):
    with pytest.raises(PromptBatchError, match="pair 0: the correct answer 'ab' is 2 tokens"):
        build_pair_batch(model, [PairRecord("ab", "ac", "ab", "b")])


def test_from_tokens_and_select():
    b = pair_batch_from_tokens([[1, 2, 3], [4, 5]], [[1, 2, 4], [4, 6]], [7, 8], [9, 10], pad_id=0)
    assert b.clean.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert b.last.tolist() == [2, 1]
    sub = b.select([1])
    assert sub.clean.tolist() == [[4, 5, 0]] and sub.correct.tolist() == [8]
    with pytest.raises(PromptBatchError, match="pair 1"):
        pair_batch_from_tokens([[1], [1, 2]], [[1], [1]], [1, 1], [2, 2])
    assert torch.equal(b.to("cpu").clean, b.clean)
