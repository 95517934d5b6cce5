"""Config of the ``throughput`` run kind: how fast a worker runs a model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from analysis.configs.base import RunConfigBase


class ThroughputConfig(RunConfigBase):
    """Measure forward-pass throughput (tokens/s) of a model on this worker's device."""

    kind: Literal["throughput"] = "throughput"
    steps: int = Field(default=20, ge=1, le=1_000_000, description="Forward passes to time.")
    batch: int = Field(default=8, ge=1, le=4096, description="Sequences per forward pass.")
    seq_len: int = Field(default=64, ge=1, description="Tokens per sequence (≤ model context).")
