"""Prompt pairs for the zoo models' known tasks (circuit gates, bench, demo prompt sets).

Induction (``zoo:induction-2l``): the clean prompt is a block ``s`` of ``p`` distinct random
letters followed by its first ``j`` letters again; the answer is ``s[j]``, which only an
induction circuit can predict (the current letter occurred once before, followed by ``s[j]``).
"""

from __future__ import annotations

import random
import string

from analysis.prompts.generators import induction_contrast_pairs
from storage.records import PairIn

LETTERS = string.ascii_lowercase


def induction_pairs(
    n: int, seed: int = 0, periods: tuple[int, int] = (5, 10), corrupt: str = "all"
) -> list[PairIn]:
    """``corrupt="all"``: the corrupted prompt is the same construction on letters disjoint
    from ``s`` (so it predicts its own letter, the incorrect answer), which changes every token
    and so every token-carrying edge. ``corrupt="block"``: only the first block is replaced
    (the repeated part and the query token stay), incorrect = a letter not in ``s``."""
    return induction_contrast_pairs(list(LETTERS), n, random.Random(seed), periods, corrupt)


def greater_than_pairs(n: int, seed: int = 0) -> list[PairIn]:
    """Greater-than (``zoo:greater-than-3l``): clean ``<filler>YY>`` with tens digit Y1 in 2..8;
    correct = Y1 + 1 (a larger tens digit is possible), incorrect = Y1 - 1 (impossible).
    Corrupted: the same filler with ``YY`` = ``01`` (Hanna et al.'s "01" baseline), after which
    both digits are possible."""
    rng = random.Random(seed)
    chars = LETTERS + string.digits
    pairs = []
    for _ in range(n):
        filler = "".join(rng.choice(chars) for _ in range(rng.randint(0, 6)))
        y1, y2 = rng.randint(2, 8), rng.randint(0, 9)
        pairs.append(
            PairIn(
                clean=f"{filler}{y1}{y2}>",
                corrupted=f"{filler}01>",
                correct=str(y1 + 1),
                incorrect=str(y1 - 1),
            )
        )
    return pairs
