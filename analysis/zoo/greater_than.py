"""Recipe for ``zoo:greater-than-3l``: a 3-layer model with MLPs that learns "greater than".

Task (a character-level version of Hanna et al. 2023): each row is
``<bos> <filler> Y1 Y2 > Z1`` where the filler is 0-6 random letters or digits, ``YY`` is a
two-digit number 00..98 and ``ZZ`` is drawn uniformly from YY+1..99; the model is trained only
on predicting ``Z1`` (the tens digit of ZZ) at the ``>`` position. The ideal prediction puts no
mass on tens digits below Y1, ``(9 - Y2)/(99 - YY)`` on Y1 itself, ``10/(99 - YY)`` on each
digit above. Reading Y1 and Y2 needs attention (their absolute positions vary with the filler);
turning them into that distribution is a lookup the MLPs can do. What the trained model
actually does is established by analysis in MECHANISM.md, not assumed from this description.
"""

from __future__ import annotations

import string

import torch

from analysis.zoo.task import Recipe, TaskBatch

ALPHABET = string.ascii_lowercase + string.digits + ">"
MAX_FILLER = 6
ROW_LEN = 1 + MAX_FILLER + 3 + 1  # <bos>, filler, Y1 Y2 >, Z1


def sample_comparisons(generator: torch.Generator, batch: int, vocab: dict[str, int]) -> TaskBatch:
    filler_ids = torch.tensor([vocab[ch] for ch in string.ascii_lowercase + string.digits])
    digit_ids = torch.tensor([vocab[ch] for ch in string.digits])
    yy = torch.randint(0, 99, (batch,), generator=generator)
    span = (99 - yy).to(torch.float32)
    zz = yy + 1 + (torch.rand(batch, generator=generator) * span).long().clamp(max=98 - yy)
    n_filler = torch.randint(0, MAX_FILLER + 1, (batch,), generator=generator)
    filler = filler_ids[torch.randint(0, len(filler_ids), (batch, MAX_FILLER), generator=generator)]
    tokens = torch.full((batch, ROW_LEN), vocab["<pad>"], dtype=torch.long)
    tokens[:, 0] = vocab["<bos>"]
    loss_mask = torch.zeros(batch, ROW_LEN - 1, dtype=torch.bool)
    for row in range(batch):
        f = int(n_filler[row])
        tail = torch.stack(
            [
                digit_ids[yy[row] // 10],
                digit_ids[yy[row] % 10],
                torch.tensor(vocab[">"]),
                digit_ids[zz[row] // 10],
            ]
        )
        tokens[row, 1 : 1 + f] = filler[row, :f]
        tokens[row, 1 + f : 5 + f] = tail
        loss_mask[row, 3 + f] = True  # logits at ">" predict Z1
    return TaskBatch(tokens=tokens, loss_mask=loss_mask)


RECIPE = Recipe(
    name="greater-than-3l",
    alphabet=ALPHABET,
    tl_config={
        "d_model": 64,
        "d_head": 16,
        "n_heads": 4,
        "n_layers": 3,
        "n_ctx": 16,
        "d_mlp": 256,
        "act_fn": "gelu",
        "attn_only": False,
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
    },
    sample=sample_comparisons,
    steps=1500,
    batch_size=128,
    lr=2e-3,
)
