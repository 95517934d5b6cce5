"""What a head mask is scored by, per prompt: the language-model loss and the task metric.

- ``loss``: the mean next-token cross-entropy over a clean prompt's own tokens (each real
  position predicts the next real token; the answer is not part of it);
- ``metric``: the run's task metric at the prompt's last position (``analysis.metrics``:
  ``logit_diff`` or ``prob``, higher = the task is done better).

Both are read from the same forward, so a pruning curve costs one evaluation per mask.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int

from analysis.metrics import last_logits, metric_per_prompt
from analysis.prompt_batch import PairBatch

OBJECTIVES: tuple[str, ...] = ("loss", "metric")


def lm_loss_per_prompt(
    logits: Float[torch.Tensor, "rows pos d_vocab"],
    tokens: Int[torch.Tensor, "batch pos"],
    lengths: Int[torch.Tensor, " batch"],
) -> Float[torch.Tensor, " rows"]:
    """Mean next-token cross-entropy of each row over its real positions; ``logits`` may hold
    several stacked copies of the batch."""
    n = tokens.shape[0]
    copies = logits.shape[0] // n
    targets = tokens[:, 1:].to(logits.device).repeat(copies, 1)
    pos = torch.arange(tokens.shape[1] - 1, device=logits.device)
    real = (pos[None] < (lengths.to(logits.device) - 1)[:, None]).repeat(copies, 1)
    logp = logits[:, :-1].float().log_softmax(-1)
    nll = -logp.gather(-1, targets[..., None])[..., 0]
    return (nll * real).sum(-1) / real.sum(-1).clamp(min=1)


def outcomes(
    logits: Float[torch.Tensor, "rows pos d_vocab"], batch: PairBatch, metric: str
) -> tuple[Float[torch.Tensor, " rows"], Float[torch.Tensor, " rows"]]:
    """(task metric, LM loss) of every row."""
    return task_metric(logits, batch, metric), lm_loss_per_prompt(
        logits, batch.clean, batch.lengths
    )


def task_metric(
    logits: Float[torch.Tensor, "rows pos d_vocab"], batch: PairBatch, metric: str
) -> Float[torch.Tensor, " rows"]:
    """The task metric of every row at its prompt's last position."""
    copies = logits.shape[0] // batch.n_pairs
    return metric_per_prompt(metric, last_logits(logits, batch.last.repeat(copies)), batch)


def objective_of(
    objective: str, logits: Float[torch.Tensor, "rows pos d_vocab"], batch: PairBatch, metric: str
) -> Float[torch.Tensor, " rows"]:
    """The objective ``L`` of every row (``loss`` or the task ``metric``)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of: loss, metric")
    if objective == "loss":
        return lm_loss_per_prompt(logits, batch.clean, batch.lengths)
    return task_metric(logits, batch, metric)
