"""Configs of the head-analysis run kinds ``heads``, ``dla``, ``patch``, ``ablate``. Torch-free.

- ``heads``: attention statistics and head-type scores over the clean prompts of a prompt set
  (plus optional random repeated sequences that reveal induction heads); patterns saved as
  artifacts.
- ``dla``: direct logit attribution of heads, MLPs and embeddings to the logit difference, per
  prompt and averaged, and the logit lens per layer.
- ``patch``: activation patching of head z/q/k/v/pattern (all positions and/or per position)
  and the residual stream per layer x position; fast (batched, default) or exact path;
  attribution patching and its correlation with exact patching of z.
- ``ablate``: zero / mean / resample ablation of each head's output.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from analysis.configs.base import RunConfigBase

PATCH_SITES = ("z", "q", "k", "v", "pattern", "resid")
ABLATIONS = ("zero", "mean", "resample")
MetricField = Literal["logit_diff", "prob", "kl"]


def _check_choices(values: list[str], allowed: tuple[str, ...], field: str) -> list[str]:
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(
            f"{field} must be a non-empty list from {', '.join(allowed)}; got {values!r}"
        )
    return list(dict.fromkeys(values))


class HeadsConfig(RunConfigBase):
    """Per-head attention statistics and head-type scores."""

    kind: Literal["heads"] = "heads"
    max_prompts: int = Field(default=64, ge=1, le=10_000, description="Prompts used from the set")
    repeated_sequences: int = Field(
        default=0, ge=0, le=1000,
        description="Also score this many random token sequences repeated twice (induction)",
    )  # fmt: skip
    repeat_length: int = Field(default=10, ge=2, le=512, description="Length of each half")
    save_patterns: bool = Field(default=True, description="Save attention patterns as artifacts")


class DlaConfig(RunConfigBase):
    """Direct logit attribution and logit lens."""

    kind: Literal["dla"] = "dla"
    max_pairs: int = Field(default=64, ge=1, le=10_000, description="Pairs used from the set")
    per_prompt: bool = Field(default=True, description="Also store per-prompt values")


class PatchConfig(RunConfigBase):
    """Activation patching of heads and the residual stream."""

    kind: Literal["patch"] = "patch"
    sites: list[str] = Field(
        default=["z"], description="What to patch: z, q, k, v, pattern, resid (comma separated)"
    )
    positions: Literal["all", "each", "both"] = Field(
        default="all", description="Heads over all positions, per position, or both"
    )
    metric: MetricField = Field(default="logit_diff", description="logit_diff, prob or kl")
    direction: Literal["denoising", "noising"] = Field(
        default="denoising", description="denoising: clean into corrupted; noising: reverse"
    )
    method: Literal["fast", "exact"] = Field(
        default="fast", description="fast (batched, equal to exact) or exact (one forward each)"
    )
    attribution: bool = Field(
        default=True, description="Also run attribution patching of z and report correlation"
    )
    max_pairs: int = Field(default=64, ge=1, le=10_000, description="Pairs used from the set")
    only_positions: list[int] = Field(
        default=[], description="Per-position patching only at these positions (empty = all)"
    )

    @field_validator("sites")
    @classmethod
    def _sites(cls, v: list[str]) -> list[str]:
        return _check_choices(v, PATCH_SITES, "sites")


class AblateConfig(RunConfigBase):
    """Zero, mean and resample ablation of each head."""

    kind: Literal["ablate"] = "ablate"
    methods: list[str] = Field(
        default=list(ABLATIONS), description="Ablations to run: zero, mean, resample"
    )
    metric: MetricField = Field(default="logit_diff", description="logit_diff, prob or kl")
    max_pairs: int = Field(default=64, ge=1, le=10_000, description="Pairs used from the set")

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        return _check_choices(v, ABLATIONS, "methods")
