"""Published circuits as data, in the zoo's ground-truth format.

- ``gpt2-small-ioi``: Wang et al. 2022, indirect object identification in GPT-2 small.
- ``gpt2-small-greater-than``: Hanna et al. 2023, greater-than in GPT-2 small.

Each file has ``model``, ``task``, ``nodes`` (``a{L}.h{H}``, ``m{L}``), ``edges``
(``[source, target]`` with ``<q>/<k>/<v>`` on head targets), ``classes`` (the paper's head
classes), ``source`` (the citation) and ``evidence``. Torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REFERENCE_DIR = Path(__file__).resolve().parent


def reference_names() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.json"))


def load_reference(name: str) -> dict[str, Any]:
    """A published circuit by name (e.g. ``gpt2-small-ioi``); ValueError lists the known ones."""
    path = REFERENCE_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(
            f"unknown reference circuit {name!r}; known: {', '.join(reference_names())}"
        )
    return json.loads(path.read_text())
