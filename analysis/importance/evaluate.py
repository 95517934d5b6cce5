"""Many head masks evaluated in batched forwards: the task metric and the LM loss of each.

A pruning curve needs ``points × orders`` masked evaluations of the whole prompt set. The
evaluator stacks ``c`` masks as ``c`` copies of the batch in one forward (one gate row per copy
and prompt, ``analysis.importance.mask``), with ``c`` chosen from the free memory (all
positions' logits are kept, for the loss); identical masks are evaluated once. The exact twin
``evaluate_masks_exact`` runs one plain hooked forward of the batch per mask.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float

from analysis.importance.mask import Masks, Sources, gate_hooks, row_gates
from analysis.importance.objective import outcomes
from analysis.patching.exact import check_finite
from analysis.patching.fast import (
    MAX_ROWS_CPU,
    MEMORY_FRACTION,
    available_bytes,
    bytes_per_row,
    run_chunks,
)
from analysis.prompt_batch import PairBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class MaskOutcomes:
    """Mean over prompts of the task metric and the LM loss, one value per mask."""

    metric: Float[torch.Tensor, " mask"]
    loss: Float[torch.Tensor, " mask"]


def rows_per_forward(
    model: TransformerBridge, n_pos: int, device: torch.device | str, backward: bool = False
) -> int:
    """Prompt rows one forward may hold: a fraction of free memory over a row's activations
    and its logits at every position (three times that with a backward pass)."""
    itemsize = torch.finfo(getattr(model.cfg, "dtype", None) or torch.float32).bits // 8
    row = bytes_per_row(model, n_pos) + 3 * n_pos * int(model.cfg.d_vocab) * itemsize
    rows = int(MEMORY_FRACTION * available_bytes(device)) // (row * (3 if backward else 1))
    if torch.device(device).type != "cuda":
        rows = min(rows, MAX_ROWS_CPU)
    return max(1, rows)


def prompt_chunks(
    model: TransformerBridge, batch: PairBatch, backward: bool = False
) -> list[list[int]]:
    """The batch's prompts in consecutive chunks that fit one forward."""
    size = rows_per_forward(model, batch.n_pos, batch.clean.device, backward)
    return [list(range(i, min(i + size, batch.n_pairs))) for i in range(0, batch.n_pairs, size)]


class MaskEvaluator:
    """Evaluates head masks on one prompt batch, many masks per forward."""

    def __init__(
        self, model: TransformerBridge, batch: PairBatch, metric: str, sources: Sources
    ) -> None:
        self.model, self.batch, self.metric, self.sources = model, batch, metric, sources
        rows = rows_per_forward(model, batch.n_pos, batch.clean.device)
        self.chunk = max(1, rows // batch.n_pairs)
        self.forwards = 0  # batched forwards run
        self.rows = 0  # prompt rows they held

    def _run(self, masks: Masks) -> torch.Tensor:
        n = self.batch.n_pairs
        gates = row_gates(masks.to(self.batch.clean.device), n)
        tokens = self.batch.clean.repeat(masks.shape[0], 1)
        with torch.no_grad(), self.model.hooks(fwd_hooks=gate_hooks(gates, self.sources)):
            logits = self.model(tokens)
        check_finite(logits, "the masked run's logits")
        values, loss = outcomes(logits, self.batch, self.metric)
        self.forwards += 1
        self.rows += tokens.shape[0]
        pair = torch.stack([values, loss], dim=-1).reshape(masks.shape[0], n, 2)
        return pair.mean(1).double().cpu()

    def evaluate(self, masks: Masks, progress: Progress | None = None) -> MaskOutcomes:
        """Metric and loss of every mask [mask, layer, head] (1 keeps a head, 0 removes it);
        ``progress(fraction, message)`` after each batched forward."""
        unique, inverse = torch.unique(masks.float().flatten(1), dim=0, return_inverse=True)
        shaped = unique.reshape(-1, *masks.shape[1:])
        runner = functools.partial(self._run_indices, shaped, progress)
        index = [(i,) for i in range(shaped.shape[0])]
        outputs, self.chunk = run_chunks(index, self.chunk, runner)
        values = torch.cat(outputs)[inverse]
        return MaskOutcomes(metric=values[:, 0], loss=values[:, 1])

    def _run_indices(
        self, masks: Masks, progress: Progress | None, index: Sequence[tuple[int, ...]]
    ) -> torch.Tensor:
        out = self._run(masks[[i for (i,) in index]])
        if progress is not None:
            done = index[-1][0] + 1
            progress(done / masks.shape[0], f"{done}/{masks.shape[0]} masks evaluated")
        return out


def evaluate_masks_exact(
    model: TransformerBridge, batch: PairBatch, metric: str, sources: Sources, masks: Masks
) -> MaskOutcomes:
    """Reference: one hooked forward of the prompt batch per mask."""
    metric_values, losses = [], []
    for mask in masks:
        gates = {layer: mask[layer].expand(batch.n_pairs, -1) for layer in range(mask.shape[0])}
        with torch.no_grad(), model.hooks(fwd_hooks=gate_hooks(gates, sources)):
            logits = model(batch.clean)
        values, loss = outcomes(logits, batch, metric)
        metric_values.append(values.double().mean())
        losses.append(loss.double().mean())
    return MaskOutcomes(metric=torch.stack(metric_values).cpu(), loss=torch.stack(losses).cpu())
