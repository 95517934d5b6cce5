"""Config of the run kind ``importance``: head importance and pruning curves. Torch-free.

Over the clean prompts of a set: each head's gradient importance ``mean |∂L/∂ξ_h|`` at the
head mask ξ = 1 (Michel et al. 2019), ``L`` the LM loss or the task metric, optionally
normalised per layer; beside it the head's ablation importance (removing it alone) and their
Spearman rank correlation; and pruning curves — the metric and the loss against the fraction of
heads removed — in the order of gradient importance (once, or recomputed as heads go, as
Michel), of ablation importance, of a stored per-head score of another run, and at random.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from analysis.configs.base import RunConfigBase
from analysis.configs.heads import _check_choices

PRUNING_ORDERS = ("gradient", "gradient_iterative", "ablation", "random")


class ImportanceConfig(RunConfigBase):
    """Gradient and ablation importance of every head, and pruning curves."""

    kind: Literal["importance"] = "importance"
    objective: Literal["metric", "loss"] = Field(
        default="metric",
        description="L of the gradient importance: the task metric or the LM loss",
    )
    metric: Literal["logit_diff", "prob"] = Field(
        default="logit_diff", description="Task metric: logit_diff or prob"
    )
    ablation: Literal["zero", "mean", "resample"] = Field(
        default="zero",
        description="How a head is removed: zero (mask z, Michel), mean or resample",
    )
    normalise_layers: bool = Field(
        default=False, description="Divide each layer's gradient importances by their l2 norm"
    )
    orders: list[str] = Field(
        default=list(PRUNING_ORDERS),
        description="Pruning orders: gradient, gradient_iterative, ablation, random",
    )
    iterative_step: float = Field(
        default=0.1, gt=0.0, le=0.5,
        description="Fraction of heads removed between recomputations (gradient_iterative)",
    )  # fmt: skip
    curve_points: int = Field(
        default=11, ge=2, le=201, description="Points of each pruning curve (0 to all heads)"
    )
    random_seeds: int = Field(default=3, ge=1, le=50, description="Random pruning orders")
    max_metric_drop: float = Field(
        default=0.1, gt=0.0, lt=1.0,
        description="Report the fraction prunable while the metric keeps 1 - this of its value",
    )  # fmt: skip
    score_run: int | None = Field(
        default=None, ge=1, description="Also prune in the order of this run's per-head score"
    )
    score_metric: str | None = Field(
        default=None, description="The per-head metric of --score-run that orders the heads"
    )
    score_ascending: bool = Field(
        default=True, description="Remove the lowest scores first (false: the highest)"
    )
    score_abs: bool = Field(default=False, description="Order by |score|")
    max_pairs: int = Field(default=64, ge=1, le=10_000, description="Pairs used from the set")

    @field_validator("orders")
    @classmethod
    def _orders(cls, v: list[str]) -> list[str]:
        return _check_choices(v, PRUNING_ORDERS, "orders")

    @model_validator(mode="after")
    def _inputs(self) -> ImportanceConfig:
        if self.prompt_set is None:
            raise ValueError(
                "prompt_set: head importance needs a prompt set (--prompts NAME); make one with: "
                "headlab prompts generate TASK --model MODEL"
            )
        if (self.score_run is None) != (self.score_metric is None):
            raise ValueError(
                "score_run: --score-run and --score-metric go together (a finished run and one "
                "of its per-head metrics); give both or neither"
            )
        if self.score_metric is not None and not self.score_metric.strip():
            raise ValueError("score_metric: empty; name one of the run's per-head metrics")
        return self
