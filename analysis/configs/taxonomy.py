"""Config of the run kind ``taxonomy``: the head taxonomy of the long-context and sink literature.

Over the clean prompts of a set (a needle set from ``prompts generate needle`` adds retrieval):
retrieval scores (Wu et al. 2024), streaming-vs-retrieval ranking by streaming each head to a
sink + recent window (DuoAttention, training-free) beside RazorAttention's echo + induction
criterion, a KV-cache compression curve, attention spans (MoA), head similarity clusters
(ProxyAttn), sink mass, value and output norms and dormancy (Active-Dormant heads), and the
residual stream's massive activations. Torch-free.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from analysis.configs.base import RunConfigBase


class TaxonomyConfig(RunConfigBase):
    """Retrieval, streaming, span, sink and dormancy scores per head, and a KV-cache curve."""

    kind: Literal["taxonomy"] = "taxonomy"
    max_prompts: int = Field(default=32, ge=1, le=10_000, description="Prompts used from the set")
    sink: int = Field(default=1, ge=0, le=64, description="Sink tokens a streamed head keeps")
    window: int = Field(
        default=8, ge=1, le=4096, description="Recent tokens a streamed head keeps (incl. itself)"
    )
    streaming_fraction: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Fraction of KV heads classed streaming (lowest streaming KL)",
    )  # fmt: skip
    kv_points: int = Field(
        default=9, ge=2, le=65, description="Points of the KV-cache curve (0 to all heads)"
    )
    kv_seeds: int = Field(default=3, ge=1, le=20, description="Random orders for the baseline")
    span_coverage: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Attention mass a head's span must cover"
    )
    sink_threshold: float = Field(
        default=0.3, gt=0.0, le=1.0,
        description="Mean attention a later token must draw to count as a sink",
    )  # fmt: skip
    dormant_sink_mass: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Dormant: sink mass at least this"
    )
    dormant_norm_ratio: float = Field(
        default=0.5, gt=0.0, description="Dormant: output norm at most this × the head's mean"
    )
    repeated_sequences: int = Field(
        default=16, ge=1, le=1000,
        description="Random repeated sequences for RazorAttention's echo/induction scores",
    )  # fmt: skip
    repeat_length: int = Field(default=10, ge=2, le=512, description="Length of each half")
    clusters: int = Field(
        default=0, ge=0, le=1024, description="Head-similarity clusters (0: √heads)"
    )
    ranking: Literal["kl", "logit_diff", "loss"] = Field(
        default="kl", description="Streaming deviation that ranks heads: kl, logit_diff or loss"
    )

    @model_validator(mode="after")
    def _needs_prompts(self) -> TaxonomyConfig:
        if self.prompt_set is None:
            raise ValueError(
                "prompt_set: the taxonomy needs a prompt set (--prompts NAME); "
                "make a needle set with: headlab prompts generate needle --model MODEL"
            )
        return self
