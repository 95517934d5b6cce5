"""What a zoo training recipe is: a synthetic task's batch sampler and its training settings.

Each task module (``analysis.zoo.induction``, ``analysis.zoo.greater_than``) defines one
``RECIPE``; ``analysis.zoo.train.RECIPES`` lists them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Int


@dataclass(frozen=True)
class TaskBatch:
    """Token rows (BOS first) and which next-token predictions count in the loss."""

    tokens: Int[torch.Tensor, "batch pos"]
    loss_mask: Bool[torch.Tensor, "batch pos_minus_1"]  # loss on predicting tokens[:, 1:]


Sampler = Callable[[torch.Generator, int, dict[str, int]], TaskBatch]


@dataclass(frozen=True)
class Recipe:
    name: str
    alphabet: str
    tl_config: dict[str, Any]
    sample: Sampler  # (generator, batch_size, vocab) -> TaskBatch
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.01
    seed: int = 0
