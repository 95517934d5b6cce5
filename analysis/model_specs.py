"""Model spec strings: what a user writes to name a model, parsed and checked before any work.

Two forms:

- ``zoo:<name>`` — a tiny model shipped with headlab (``analysis/zoo/models/<name>/``).
- ``hf:<hub id or local folder>`` — a HuggingFace checkpoint, e.g. ``hf:gpt2``,
  ``hf:EleutherAI/pythia-70m``, or a folder written by ``save_pretrained`` such as
  ``hf:/data/models/my-gpt2`` or ``hf:./checkpoints/run1``.

Parsing is torch-free and touches only the local file system: a hub id is accepted by shape here
and only fails at load time if the hub cannot be reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from analysis.zoo import is_built, zoo_folder, zoo_names

SPEC_EXAMPLES = "zoo:induction-2l, hf:gpt2, hf:EleutherAI/pythia-70m, hf:/path/to/saved/model"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class ModelSpecError(ValueError):
    """A model spec is malformed or names nothing loadable. The message says how to fix it."""


@dataclass(frozen=True)
class ModelSpec:
    kind: Literal["zoo", "hf"]
    target: str  # zoo name, hub id, or absolute folder path
    is_local: bool  # True for zoo models and local folders

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def folder(self) -> Path | None:
        if self.kind == "zoo":
            return zoo_folder(self.target)
        return Path(self.target) if self.is_local else None


def looks_like_path(target: str) -> bool:
    return target.startswith(("/", ".", "~")) or Path(target).is_dir()


def _parse_zoo(name: str) -> ModelSpec:
    if name not in zoo_names():
        raise ModelSpecError(f"unknown zoo model {name!r}; the zoo has: {', '.join(zoo_names())}")
    if not is_built(name):
        raise ModelSpecError(
            f"zoo model {name!r} is not built yet: run `headlab models build-demo` "
            f"(or `python -m analysis.zoo.train {name}`)"
        )
    return ModelSpec("zoo", name, True)


def _parse_hf(target: str) -> ModelSpec:
    if looks_like_path(target):
        folder = Path(target).expanduser().resolve()
        if not folder.is_dir():
            raise ModelSpecError(f"hf:{target}: no such folder {folder}")
        if not (folder / "config.json").exists():
            raise ModelSpecError(
                f"hf:{target}: {folder} has no config.json; point at a folder written by "
                "`model.save_pretrained(folder)` (config.json + weights)"
            )
        return ModelSpec("hf", str(folder), True)
    if not _HUB_ID.match(target):
        raise ModelSpecError(
            f"hf:{target}: not a HuggingFace hub id (owner/name) or an existing folder; "
            f"examples: {SPEC_EXAMPLES}"
        )
    return ModelSpec("hf", target, False)


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse and check a spec string; raises ModelSpecError naming the problem and the fix."""
    text = (spec or "").strip()
    kind, sep, target = text.partition(":")
    if not sep or kind not in ("zoo", "hf") or not target.strip():
        raise ModelSpecError(
            f"model spec {spec!r} is malformed: write zoo:<name> or hf:<hub id or local folder>, "
            f"e.g. {SPEC_EXAMPLES}"
        )
    target = target.strip()
    return _parse_zoo(target) if kind == "zoo" else _parse_hf(target)
