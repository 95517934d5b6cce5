"""The model zoo: tiny transformers headlab trains itself, with known mechanisms.

Each zoo model lives in ``analysis/zoo/models/<name>/``:

- ``config.json``: ``{"format": "headlab-zoo/1", "name", "tl_config": {TransformerBridgeConfig
  fields}, "alphabet", "training": {recipe and measured training numbers}}``; an earlier
  checkpoint of another zoo model's training run also has ``"checkpoint_of": <name>, "step": N``
  in ``training``
- ``model.safetensors``: the TransformerBridge state dict (keys ``embed.weight``,
  ``blocks.{L}.attn.q.weight``, ..., ``unembed.weight``), float32
- ``tokenizer/``: a saved ``PreTrainedTokenizerFast`` (character level, ``<bos>`` prepended)
- ``ground_truths/<task>.json``: the circuit of each task (node/edge names as in docs:
  ``a{L}.h{H}``, ``m{L}``), named by the prompt generator's task
- ``MECHANISM.md``: the evidence for that circuit

Spec ``zoo:<name>`` loads one. This module is torch-free: it only names and locates models.
"""

from __future__ import annotations

import json
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"

# The zoo's models; each has a training recipe in ``analysis.zoo.train.RECIPES``.
ZOO_NAMES: tuple[str, ...] = ("code-6l", "greater-than-3l", "induction-2l", "induction-2l-early")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
GROUND_TRUTH_DIR = "ground_truths"  # <task>.json: the known circuit of each task


def zoo_names() -> list[str]:
    """Names of the zoo models headlab knows how to build."""
    return sorted(ZOO_NAMES)


def zoo_folder(name: str) -> Path:
    """Folder of a zoo model (whether or not it has been built yet)."""
    return MODELS_DIR / name


def is_built(name: str, models_dir: Path | None = None) -> bool:
    """True when the zoo model's weights, config and tokenizer are all on disk."""
    folder = (models_dir or MODELS_DIR) / name
    return all((folder / part).exists() for part in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_DIR))


def checkpoint_of(name: str, models_dir: Path | None = None) -> tuple[str, int] | None:
    """``(parent, step)`` when zoo model ``name`` is the parent's training run stopped after
    ``step`` steps (read from its shipped config); None for a model of its own run."""
    path = (models_dir or MODELS_DIR) / name / CONFIG_FILE
    if not path.exists():
        return None
    training = json.loads(path.read_text(encoding="utf-8")).get("training") or {}
    parent, step = training.get("checkpoint_of"), training.get("step")
    return (str(parent), int(step)) if parent and step is not None else None


def spec_checkpoint(spec: str) -> tuple[str, int] | None:
    """``(parent, step)`` when model spec ``spec`` names a zoo checkpoint (``zoo:<name>``)."""
    return checkpoint_of(spec.removeprefix("zoo:")) if spec.startswith("zoo:") else None


def checkpoint_label(spec: str) -> str | None:
    """``"step 150 of induction-2l"`` for a zoo checkpoint's spec, else None."""
    found = spec_checkpoint(spec)
    return None if found is None else f"step {found[1]} of {found[0]}"
