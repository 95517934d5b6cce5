"""One small real ``taxonomy`` run for app tests: a needle set on the zoo's induction model."""

from __future__ import annotations

from pathlib import Path

import headlab

MODEL = "zoo:induction-2l"


def taxonomy_run(home: Path, n: int, name: str) -> tuple[headlab.Lab, int]:
    """(lab on ``home``, run id) of a taxonomy run over ``n`` needle prompts (~5 s)."""
    lab = headlab.Lab(home)
    lab.generate_prompts("needle", MODEL, n=n, name=name)
    run = lab.run(
        "taxonomy", MODEL, name, max_prompts=n, kv_points=3, kv_seeds=2, repeated_sequences=4,
        progress=False,
    )  # fmt: skip
    return lab, run.record.id
