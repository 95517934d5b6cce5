"""Behaviour metrics read at each prompt's last real position, and their normalisation.

Metrics (per prompt, then averaged over the prompt set):

- ``logit_diff``: logit of the correct answer minus logit of the incorrect answer.
- ``prob``: softmax probability of the correct answer.
- ``kl``: KL(clean || run) between the clean run's next-token distribution and this run's,
  at the last position. Zero on the clean run itself.

A patching effect is normalised ``(m_patched - m_corrupt) / (m_clean - m_corrupt)`` on the
prompt-set means: 0 = the corrupted behaviour, 1 = the clean behaviour, whichever direction
(denoising or noising) the patch goes. When the clean and corrupted means are (nearly) equal
the normalisation is undefined: ``MetricUndefined`` is raised, naming the metric and the pairs
whose clean and corrupted values coincide, instead of dividing by ~0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int

from analysis.prompt_batch import PairBatch

MetricName = Literal["logit_diff", "prob", "kl"]
METRIC_NAMES: tuple[str, ...] = ("logit_diff", "prob", "kl")

# |m_clean - m_corrupt| at or below this (relative to the values' scale) counts as zero.
REL_TOLERANCE = 1e-6


class MetricUndefined(ValueError):
    """The normalised metric is undefined (clean and corrupted metric coincide)."""


def last_logits(
    logits: Float[torch.Tensor, "batch pos d_vocab"], last: Int[torch.Tensor, " batch"]
) -> Float[torch.Tensor, "batch d_vocab"]:
    """The logits at each prompt's last real position."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, last.to(logits.device)]


def metric_per_prompt(
    name: str,
    logits_last: Float[torch.Tensor, "batch d_vocab"],
    batch: PairBatch,
    clean_logits_last: Float[torch.Tensor, "batch d_vocab"] | None = None,
) -> Float[torch.Tensor, " batch"]:
    """One metric value per prompt from the logits at the last position.

    ``logits_last`` may hold several stacked copies of the batch (``copies * batch`` rows):
    answers and clean logits are repeated to match.
    """
    n = batch.n_pairs
    if logits_last.shape[0] % n:
        raise ValueError(f"{logits_last.shape[0]} rows is not a multiple of {n} pairs")
    reps = logits_last.shape[0] // n
    rows = torch.arange(logits_last.shape[0], device=logits_last.device)
    logits_last = logits_last.float()
    if name == "logit_diff":
        correct = batch.correct.to(logits_last.device).repeat(reps)
        incorrect = batch.incorrect.to(logits_last.device).repeat(reps)
        return logits_last[rows, correct] - logits_last[rows, incorrect]
    if name == "prob":
        correct = batch.correct.to(logits_last.device).repeat(reps)
        return logits_last.softmax(-1)[rows, correct]
    if name == "kl":
        if clean_logits_last is None:
            raise ValueError("the kl metric needs the clean run's logits")
        ref = clean_logits_last.float().to(logits_last.device).repeat(reps, 1).log_softmax(-1)
        return (ref.exp() * (ref - logits_last.log_softmax(-1))).sum(-1)
    raise ValueError(f"unknown metric {name!r}; choose one of: {', '.join(METRIC_NAMES)}")


MetricFn = Callable[[Float[torch.Tensor, "batch d_vocab"]], Float[torch.Tensor, " batch"]]


def metric_fn(
    name: str, batch: PairBatch, clean_logits_last: torch.Tensor | None = None
) -> MetricFn:
    """A function from last-position logits to per-prompt metric values."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; choose one of: {', '.join(METRIC_NAMES)}")
    if name == "kl" and clean_logits_last is None:
        raise ValueError("the kl metric needs the clean run's logits")

    def fn(logits_last: torch.Tensor) -> torch.Tensor:
        return metric_per_prompt(name, logits_last, batch, clean_logits_last)

    return fn


def _near_zero(den: float, a: float, b: float) -> bool:
    return abs(den) <= REL_TOLERANCE * max(1.0, abs(a), abs(b))


@dataclass(frozen=True)
class MetricBaseline:
    """Clean and corrupted metric values that normalise patching effects."""

    name: str
    clean: float
    corrupt: float
    clean_per_prompt: tuple[float, ...]
    corrupt_per_prompt: tuple[float, ...]

    @property
    def denominator(self) -> float:
        return self.clean - self.corrupt

    def normalise(self, values: torch.Tensor) -> torch.Tensor:
        """``(values - corrupt) / (clean - corrupt)``; raises if the denominator is ~0."""
        if _near_zero(self.denominator, self.clean, self.corrupt):
            raise MetricUndefined(self.undefined_message())
        return (values - self.corrupt) / self.denominator

    def undefined_message(self) -> str:
        same = [
            str(i)
            for i, (c, k) in enumerate(
                zip(self.clean_per_prompt, self.corrupt_per_prompt, strict=True)
            )
            if _near_zero(c - k, c, k)
        ]
        which = f"pairs {', '.join(same)} have" if same else "the prompt-set means have"
        return (
            f"metric {self.name} is the same on clean and corrupted prompts "
            f"(clean {self.clean:.6g}, corrupted {self.corrupt:.6g}); {which} no "
            "clean/corrupted difference, so the normalised effect "
            "(m_patched - m_corrupt) / (m_clean - m_corrupt) would divide by zero. "
            "Use pairs whose corruption changes the answer, or another metric"
        )


def metric_baseline(
    name: str,
    clean_logits_last: Float[torch.Tensor, "batch d_vocab"],
    corrupt_logits_last: Float[torch.Tensor, "batch d_vocab"],
    batch: PairBatch,
) -> MetricBaseline:
    """Per-prompt and mean metric on the clean and corrupted runs."""
    clean = metric_per_prompt(name, clean_logits_last, batch, clean_logits_last)
    corrupt = metric_per_prompt(name, corrupt_logits_last, batch, clean_logits_last)
    return MetricBaseline(
        name=name,
        clean=float(clean.mean()),
        corrupt=float(corrupt.mean()),
        clean_per_prompt=tuple(float(v) for v in clean),
        corrupt_per_prompt=tuple(float(v) for v in corrupt),
    )
