"""Prompt pairs as token tensors: the one batch layout every analysis reads.

A pair is a clean prompt, a corrupted prompt of the same token length, and two one-token
answers (correct, incorrect). Prompts of different pairs may differ in length: they are
RIGHT-padded with the tokenizer's pad id (or its eos id, or 0). Under causal attention a real
position never attends to a later (padding) position, so no attention mask is needed for
correctness; every metric is read at each prompt's own last real position ``last``.

Tokenization follows the model: ``model.to_tokens(prompt)`` (with the model's default BOS
handling) for prompts, and ``model.to_tokens(answer, prepend_bos=False)`` for answers, which
must be exactly one token unless the pair carries ``correct_id`` / ``incorrect_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Int

from storage.records import PairIn

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


class PromptBatchError(ValueError):
    """A prompt pair cannot be turned into tokens; the message names the pair."""


@dataclass(frozen=True)
class PairBatch:
    clean: Int[torch.Tensor, "batch pos"]
    corrupted: Int[torch.Tensor, "batch pos"]
    lengths: Int[torch.Tensor, " batch"]
    last: Int[torch.Tensor, " batch"]
    correct: Int[torch.Tensor, " batch"]
    incorrect: Int[torch.Tensor, " batch"]
    pad_id: int = 0

    @property
    def n_pairs(self) -> int:
        return int(self.clean.shape[0])

    @property
    def n_pos(self) -> int:
        return int(self.clean.shape[1])

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(
            clean=self.clean.to(device),
            corrupted=self.corrupted.to(device),
            lengths=self.lengths.to(device),
            last=self.last.to(device),
            correct=self.correct.to(device),
            incorrect=self.incorrect.to(device),
            pad_id=self.pad_id,
        )

    def select(self, index: Sequence[int]) -> PairBatch:
        """The sub-batch of the given pairs (padding kept as is)."""
        idx = torch.as_tensor(list(index), dtype=torch.long, device=self.clean.device)
        return PairBatch(
            clean=self.clean[idx],
            corrupted=self.corrupted[idx],
            lengths=self.lengths[idx],
            last=self.last[idx],
            correct=self.correct[idx],
            incorrect=self.incorrect[idx],
            pad_id=self.pad_id,
        )


def pad_id_of(model: TransformerBridge) -> int:
    """The id used for right padding: the tokenizer's pad id, else its eos id, else 0."""
    tok = getattr(model, "tokenizer", None)
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tok, attr, None) if tok is not None else None
        if isinstance(value, int):
            return value
    return 0


def pair_batch_from_tokens(
    clean: Sequence[Sequence[int]],
    corrupted: Sequence[Sequence[int]],
    correct: Sequence[int],
    incorrect: Sequence[int],
    *,
    pad_id: int = 0,
    device: torch.device | str = "cpu",
) -> PairBatch:
    """Build a batch from token id lists (no tokenizer needed); validates lengths."""
    if not (len(clean) == len(corrupted) == len(correct) == len(incorrect)):
        raise PromptBatchError("clean, corrupted, correct and incorrect need one entry per pair")
    if len(clean) == 0:
        raise PromptBatchError("the prompt set has no pairs")
    for i, (c, k) in enumerate(zip(clean, corrupted, strict=True)):
        if len(c) != len(k):
            raise PromptBatchError(
                f"pair {i}: clean has {len(c)} tokens but corrupted has {len(k)}; "
                "make both prompts tokenize to the same length"
            )
        if len(c) == 0:
            raise PromptBatchError(f"pair {i}: the prompt is empty")
    n_pos = max(len(c) for c in clean)
    clean_t = torch.full((len(clean), n_pos), pad_id, dtype=torch.long)
    corrupt_t = torch.full((len(clean), n_pos), pad_id, dtype=torch.long)
    for i, (c, k) in enumerate(zip(clean, corrupted, strict=True)):
        clean_t[i, : len(c)] = torch.as_tensor(list(c), dtype=torch.long)
        corrupt_t[i, : len(k)] = torch.as_tensor(list(k), dtype=torch.long)
    lengths = torch.as_tensor([len(c) for c in clean], dtype=torch.long)
    return PairBatch(
        clean=clean_t,
        corrupted=corrupt_t,
        lengths=lengths,
        last=lengths - 1,
        correct=torch.as_tensor(list(correct), dtype=torch.long),
        incorrect=torch.as_tensor(list(incorrect), dtype=torch.long),
        pad_id=pad_id,
    ).to(device)


def _prompt_ids(model: TransformerBridge, text: str) -> list[int]:
    return [int(t) for t in model.to_tokens(text, truncate=False)[0].tolist()]


def _answer_id(
    model: TransformerBridge, text: str, given: int | None, index: int, which: str
) -> int:
    if given is not None:
        vocab = int(model.cfg.d_vocab)
        if not 0 <= given < vocab:
            raise PromptBatchError(f"pair {index}: {which}_id {given} is outside the vocabulary")
        return int(given)
    ids = model.to_tokens(text, prepend_bos=False)[0].tolist()
    if len(ids) != 1:
        raise PromptBatchError(
            f"pair {index}: the {which} answer {text!r} is {len(ids)} tokens, not one; "
            f"use a single-token answer (often with a leading space) or set {which}_id"
        )
    return int(ids[0])


def build_pair_batch(model: TransformerBridge, pairs: Sequence[PairIn]) -> PairBatch:
    """Tokenize prompt pairs with the model's tokenizer into a right-padded ``PairBatch``."""
    if getattr(model, "tokenizer", None) is None:
        raise PromptBatchError(
            "the model has no tokenizer, so text prompts cannot be tokenized; "
            "load a model with a tokenizer or use pair_batch_from_tokens"
        )
    if len(pairs) == 0:
        raise PromptBatchError("the prompt set has no pairs")
    clean, corrupted, correct, incorrect = [], [], [], []
    n_ctx = int(model.cfg.n_ctx)
    for i, pair in enumerate(pairs):
        index = getattr(pair, "index", i)
        c, k = _prompt_ids(model, pair.clean), _prompt_ids(model, pair.corrupted)
        if len(c) != len(k):
            raise PromptBatchError(
                f"pair {index}: clean tokenizes to {len(c)} tokens but corrupted to {len(k)}; "
                "make both prompts the same length in tokens"
            )
        if len(c) > n_ctx:
            raise PromptBatchError(
                f"pair {index}: {len(c)} tokens exceed the model's context of {n_ctx}"
            )
        clean.append(c)
        corrupted.append(k)
        correct.append(_answer_id(model, pair.correct, pair.correct_id, index, "correct"))
        incorrect.append(_answer_id(model, pair.incorrect, pair.incorrect_id, index, "incorrect"))
    device = getattr(model.cfg, "device", None) or "cpu"
    return pair_batch_from_tokens(
        clean, corrupted, correct, incorrect, pad_id=pad_id_of(model), device=device
    )
