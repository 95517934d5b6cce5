"""Making the zoo available: train missing zoo models and register every zoo model in the store.

Used by ``headlab models build-demo`` (run by ``make run`` on first start). Shipped weights are
used as they are, so on a fresh checkout this only loads each model once to record its facts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from analysis.models import load_model, model_facts
from analysis.zoo import MODELS_DIR, is_built, zoo_names
from analysis.zoo.train import build_zoo_model
from storage.records import ModelRecord
from storage.store import ResultStore

log = logging.getLogger(__name__)


def ensure_built(force: bool = False, models_dir: Path = MODELS_DIR) -> list[str]:
    """Train the zoo models whose folders are incomplete (all of them with ``force``).
    Returns the names that were trained."""
    trained = []
    for name in zoo_names():
        if force or not is_built(name, models_dir):
            log.info("training zoo model %s", name)
            build_zoo_model(name, models_dir / name)
            trained.append(name)
    return trained


def register_zoo(store: ResultStore) -> list[ModelRecord]:
    """Register (or refresh) every built zoo model in the store under its zoo name."""
    records = []
    for name in zoo_names():
        if not is_built(name):
            continue
        spec = f"zoo:{name}"
        facts = model_facts(load_model(spec))
        records.append(store.add_model(name, spec, facts, replace=True))
    return records
