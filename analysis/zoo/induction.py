"""Recipe for ``zoo:induction-2l``: a 2-layer attention-only model that learns induction.

Task: each row is ``<bos>`` followed by a random lowercase string of length ``p`` repeated until
the row is full, with the period ``p`` drawn per row from ``PERIODS``. Within the first copy the
next letter is unpredictable; from the second copy on it is the letter that followed the previous
occurrence of the current letter, which a previous-token head (layer 0) + induction head (layer 1)
pair predicts. The period is random on purpose: with a fixed layout the model learns a positional
shortcut and no induction head forms (measured, see DESIGN.md).

``zoo:induction-2l-early`` (``EARLY_RECIPE``) is the same training run stopped after
``EARLY_STEP`` of its 1400 steps: same seed, data, optimiser and settings, so its weights are the
full run's weights at that step. There the loss on a repeated string's second copy is still
high and the layer-1 heads' induction scores are at their initial level; they form between steps
175 and 250 (docs/heads.md, "Comparing checkpoints").
"""

from __future__ import annotations

import dataclasses
import string

import torch

from analysis.zoo.task import Recipe, TaskBatch

LETTERS = string.ascii_lowercase
ALPHABET = LETTERS + " .,;:!?-'"
SEQ_LEN = 64  # tokens per training row including <bos>; equals n_ctx
PERIODS = (5, 20)  # inclusive range of the repeat period


def sample_repeats(generator: torch.Generator, batch: int, vocab: dict[str, int]) -> TaskBatch:
    letter_ids = torch.tensor([vocab[ch] for ch in LETTERS])
    periods = torch.randint(PERIODS[0], PERIODS[1] + 1, (batch, 1), generator=generator)
    base = letter_ids[torch.randint(0, len(LETTERS), (batch, PERIODS[1]), generator=generator)]
    index = torch.arange(SEQ_LEN - 1)[None, :] % periods
    body = torch.gather(base, 1, index)
    bos = torch.full((batch, 1), vocab["<bos>"], dtype=torch.long)
    tokens = torch.cat([bos, body], dim=1)
    return TaskBatch(tokens=tokens, loss_mask=torch.ones(batch, SEQ_LEN - 1, dtype=torch.bool))


RECIPE = Recipe(
    name="induction-2l",
    alphabet=ALPHABET,
    tl_config={
        "d_model": 64,
        "d_head": 16,
        "n_heads": 4,
        "n_layers": 2,
        "n_ctx": SEQ_LEN,
        "attn_only": True,
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
    },
    sample=sample_repeats,
    steps=1400,
    batch_size=32,
    lr=3e-3,
)

EARLY_STEP = 150  # before the induction heads form (measured: docs/heads.md)
EARLY_RECIPE = dataclasses.replace(RECIPE, name="induction-2l-early", steps=EARLY_STEP)
