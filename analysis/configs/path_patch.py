"""Config of the run kind ``path-patch``: path patching from sender heads into receivers.
Torch-free.

Path patching (Wang et al. 2022): the sender head's output comes from the source run (the
corrupted prompt; ``denoising``: the clean one), every other head and MLP is frozen to the base
run, and only the receivers — chosen heads' query, key or value inputs, or the logits — see the
patched sender. Each sender is scored into each receiver set (every chosen receiver head's q,
every one's k, …, or the logits) and, on the grid, into each single receiver head and input.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from analysis.configs.base import RunConfigBase
from analysis.configs.heads import MetricField, _check_choices

RECEIVER_CHANNELS = ("q", "k", "v")
LOGITS = "logits"
_HEAD = re.compile(r"^a(\d+)\.h(\d+)$")


def head_layer(name: str) -> int:
    """The layer of a head name ``a{L}.h{H}`` (ValueError naming the form otherwise)."""
    match = _HEAD.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a head name; heads are named a{{L}}.h{{H}}, e.g. a0.h2")
    return int(match[1])


class PathPatchConfig(RunConfigBase):
    """Path patching: sender heads into receiver heads' q/k/v or the logits."""

    kind: Literal["path-patch"] = "path-patch"
    senders: list[str] = Field(
        default=[], description="Sender heads a{L}.h{H} (comma separated; empty = every head)"
    )
    receivers: list[str] = Field(
        default=[LOGITS], description="Receivers: heads a{L}.h{H} and/or logits (default logits)"
    )
    channels: list[str] = Field(
        default=list(RECEIVER_CHANNELS),
        description="Receiver heads' inputs patched: q, k, v (default all three)",
    )
    metric: MetricField = Field(default="logit_diff", description="logit_diff, prob or kl")
    direction: Literal["noising", "denoising"] = Field(
        default="noising",
        description="noising: corrupted sender into the clean run; denoising: the reverse",
    )
    method: Literal["fast", "exact"] = Field(
        default="fast",
        description="fast (receiver inputs computed, replayed from their layer) or exact (hooks)",
    )
    grid: bool = Field(
        default=True, description="Also each sender into each single receiver head and input"
    )
    max_pairs: int = Field(default=64, ge=1, le=10_000, description="Pairs used from the set")

    @field_validator("senders")
    @classmethod
    def _senders(cls, v: list[str]) -> list[str]:
        for name in v:
            head_layer(name)
        return list(dict.fromkeys(v))

    @field_validator("receivers")
    @classmethod
    def _receivers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("receivers: name at least one receiver head a{L}.h{H} or logits")
        for name in v:
            if name != LOGITS:
                head_layer(name)
        return list(dict.fromkeys(v))

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        return _check_choices(v, RECEIVER_CHANNELS, "channels")

    @model_validator(mode="after")
    def _order(self) -> PathPatchConfig:
        if self.prompt_set is None:
            raise ValueError(
                "prompt_set: path patching needs a prompt set of clean/corrupted pairs "
                "(--prompts NAME); make one with: headlab prompts generate TASK --model MODEL"
            )
        for sender in self.senders:
            for receiver in self.receivers:
                if receiver != LOGITS and head_layer(receiver) <= head_layer(sender):
                    raise ValueError(
                        f"receivers: {receiver} is not after sender {sender}; a head reads only "
                        "heads of earlier layers, so a receiver's layer must be above every "
                        "sender's (or drop the sender, or use logits)"
                    )
        return self
