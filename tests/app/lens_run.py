"""Small real ``lens`` runs for app tests: an induction set on the zoo's induction model."""

from __future__ import annotations

from pathlib import Path

import headlab

MODEL = "zoo:induction-2l"


def lens_runs(home: Path, n: int = 6) -> tuple[headlab.Lab, int, int]:
    """(lab on ``home``, id of a lens run with a trained lens, id of one without) (~3 s)."""
    lab = headlab.Lab(home)
    lab.generate_prompts("induction", MODEL, n=n, name="ind")
    trained = lab.run("lens", MODEL, "ind", max_prompts=n, train=True, train_steps=20,
                      progress=False)  # fmt: skip
    plain = lab.run("lens", MODEL, "ind", max_prompts=n, progress=False)
    return lab, trained.record.id, plain.record.id
