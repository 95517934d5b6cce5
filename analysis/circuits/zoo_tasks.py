"""Prompt pairs for the zoo models' known tasks (circuit gates, bench, demo prompt sets).

Induction (``zoo:induction-2l``): the clean prompt is a block ``s`` of ``p`` distinct random
letters followed by its first ``j`` letters again; the answer is ``s[j]``, which only an
induction circuit can predict (the current letter occurred once before, followed by ``s[j]``).
The corrupted prompt replaces the first block by letters that do not occur in ``s``, so the
repeated part matches nothing earlier. The incorrect answer is a letter not in ``s``.
"""

from __future__ import annotations

import random
import string

from storage.records import PairIn

LETTERS = string.ascii_lowercase


def induction_pairs(n: int, seed: int = 0, periods: tuple[int, int] = (5, 10)) -> list[PairIn]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        p = rng.randint(*periods)
        block = rng.sample(LETTERS, p)
        rest = [c for c in LETTERS if c not in block]
        other = rng.sample(rest, p)
        j = rng.randint(1, p - 1)
        wrong = rng.choice([c for c in rest if c not in other] or rest)
        clean = "".join(block) + "".join(block[:j])
        corrupted = "".join(other) + "".join(block[:j])
        pairs.append(PairIn(clean=clean, corrupted=corrupted, correct=block[j], incorrect=wrong))
    return pairs
