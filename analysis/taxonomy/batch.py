"""The token batch every taxonomy analysis reads: the clean prompts of a set, and for a needle
set each prompt followed by the rest of its needle (teacher forcing), so the model's copying of
the needle can be read token by token.

A needle pair (``prompts generate needle``) has ``meta = {"task": "needle", "needle": [units],
"query": q, "depth": d, "context": n}``: its clean prompt is filler with the needle inside and
then the needle's first q units. The model copies the needle by predicting ``needle[q]`` at the
prompt's last position, ``needle[q + 1]`` one position later, and so on; ``copy_*`` hold, per
prompt and copy step, the predicting position, the needle token wanted and the position of that
token inside the needle (the place a retrieval head looks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Bool, Int

from analysis.prompt_batch import PairBatch
from storage.records import PairRecord

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


class NeedleError(ValueError):
    """A needle pair's needle cannot be found in its tokens; the message names the pair."""


@dataclass(frozen=True)
class TaxonomyBatch:
    tokens: Int[torch.Tensor, "batch pos"]  # right padded
    lengths: Int[torch.Tensor, " batch"]
    last: Int[torch.Tensor, " batch"]  # the clean prompt's last position
    correct: Int[torch.Tensor, " batch"]
    incorrect: Int[torch.Tensor, " batch"]
    copy_pos: Int[torch.Tensor, "batch step"]
    copy_target: Int[torch.Tensor, "batch step"]
    copy_source: Int[torch.Tensor, "batch step"]
    copy_mask: Bool[torch.Tensor, "batch step"]
    depth: list[float | None]
    context: list[int | None]

    @property
    def n_prompts(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def has_needles(self) -> bool:
        return bool(self.copy_mask.any())

    def prompt(self, i: int) -> Int[torch.Tensor, " pos"]:
        return self.tokens[i, : int(self.lengths[i])]

    def select(self, index: Sequence[int]) -> TaxonomyBatch:
        idx = torch.as_tensor(list(index), dtype=torch.long)
        width = int(self.lengths[idx].max())
        return TaxonomyBatch(
            self.tokens[idx, :width], self.lengths[idx], self.last[idx], self.correct[idx],
            self.incorrect[idx], self.copy_pos[idx], self.copy_target[idx],
            self.copy_source[idx], self.copy_mask[idx],
            [self.depth[i] for i in index], [self.context[i] for i in index],
        )  # fmt: skip


def _needle_ids(model: TransformerBridge, units: Sequence[str], index: int) -> list[int]:
    ids = []
    for unit in units:
        t = model.to_tokens(unit, prepend_bos=False)[0].tolist()
        if len(t) != 1:
            raise NeedleError(
                f"pair {index}: needle unit {unit!r} is {len(t)} tokens for this model; "
                "generate the needle set for this model (headlab prompts generate needle)"
            )
        ids.append(int(t[0]))
    return ids


def _find(seq: list[int], part: list[int]) -> int:
    for i in range(len(seq) - len(part) + 1):
        if seq[i : i + len(part)] == part:
            return i
    return -1


def needle_steps(
    model: TransformerBridge, prompt: list[int], meta: dict, index: int
) -> tuple[list[int], list[tuple[int, int, int]]]:
    """The continuation to append and the copy steps (position, token, needle position)."""
    needle = _needle_ids(model, meta["needle"], index)
    q = int(meta["query"])
    start = _find(prompt[: len(prompt) - q], needle)
    if start < 0 or prompt[len(prompt) - q :] != needle[:q]:
        raise NeedleError(
            f"pair {index}: its needle is not where the needle task puts it (inside the prompt, "
            "its first units at the end); regenerate it with headlab prompts generate needle"
        )
    last = len(prompt) - 1
    steps = [(last + j - q, needle[j], start + j) for j in range(q, len(needle))]
    return needle[q:-1], steps


def taxonomy_batch(
    model: TransformerBridge, pairs: Sequence[PairRecord], batch: PairBatch
) -> TaxonomyBatch:
    """The clean prompts of ``batch`` (from ``pairs``), needles continued, right padded."""
    n_ctx = int(model.cfg.n_ctx)
    rows, all_steps, depth, context = [], [], [], []
    for i, pair in enumerate(pairs):
        prompt = batch.clean[i, : int(batch.lengths[i])].tolist()
        steps: list[tuple[int, int, int]] = []
        meta = pair.meta or {}
        if meta.get("task") == "needle":
            extra, steps = needle_steps(model, prompt, meta, getattr(pair, "index", i))
            prompt = prompt + extra
        if len(prompt) > n_ctx:
            raise NeedleError(
                f"pair {getattr(pair, 'index', i)}: with its needle copied it is {len(prompt)} "
                f"tokens, over the model's context of {n_ctx}; use shorter needle contexts"
            )
        rows.append(prompt)
        all_steps.append(steps)
        depth.append(meta.get("depth"))
        context.append(meta.get("context"))
    width, n_steps = max(len(r) for r in rows), max(len(s) for s in all_steps)
    tokens = torch.full((len(rows), width), batch.pad_id, dtype=torch.long)
    copy = torch.zeros((3, len(rows), n_steps), dtype=torch.long)
    mask = torch.zeros((len(rows), n_steps), dtype=torch.bool)
    for i, (row, steps) in enumerate(zip(rows, all_steps, strict=True)):
        tokens[i, : len(row)] = torch.as_tensor(row)
        for j, step in enumerate(steps):
            copy[:, i, j] = torch.as_tensor(step)
            mask[i, j] = True
    return TaxonomyBatch(
        tokens, torch.as_tensor([len(r) for r in rows]), batch.last.cpu(), batch.correct.cpu(),
        batch.incorrect.cpu(), copy[0], copy[1], copy[2], mask, depth, context,
    )  # fmt: skip
