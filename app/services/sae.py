"""Torch-free reads of an SAE run's feature artifacts (parquet / JSON written by the SAE jobs).

Artifacts (see DESIGN conventions): ``sae_features.parquet`` (feature, frequency, mean_act,
max_act, dominant_head "L.H", dominant_share, n_heads_50), ``sae_head_shares.parquet`` (feature,
layer, head, share), ``sae_top_contexts.json`` ({feature: [{tokens, acts, max}]}),
``sae_dfa.parquet`` (feature, context, source_pos, layer, head, value). Tables are cached per
artifact content hash, since stored artifacts never change.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pandas as pd

from storage.errors import NotFound
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

FEATURES = "sae_features.parquet"
SHARES = "sae_head_shares.parquet"
CONTEXTS = "sae_top_contexts.json"
DFA = "sae_dfa.parquet"
SAE_KINDS = ("sae-train", "sae-eval")

_cache: dict[str, Any] = {}
_lock = threading.Lock()


def _read(store: ResultStore, run_id: int, name: str) -> Any:
    artifact = store.open_artifact(run_id, name)
    with _lock:
        if artifact.sha256 in _cache:
            return _cache[artifact.sha256]
    if name.endswith(".parquet"):
        value: Any = pd.read_parquet(artifact.path)
    else:
        with open(artifact.path, encoding="utf-8") as fh:
            value = json.load(fh)
    with _lock:
        if len(_cache) > 32:
            _cache.clear()
        _cache[artifact.sha256] = value
    return value


def sae_runs(store: ResultStore, limit: int = 200) -> list[RunRecord]:
    runs: list[RunRecord] = []
    for kind in SAE_KINDS:
        runs.extend(store.list_runs(kind=kind, status=RunStatus.FINISHED, limit=limit))
    return sorted(runs, key=lambda r: r.id, reverse=True)


def features(store: ResultStore, run_id: int) -> pd.DataFrame:
    return _read(store, run_id, FEATURES)


def head_shares(store: ResultStore, run_id: int) -> pd.DataFrame:
    return _read(store, run_id, SHARES)


def top_contexts(store: ResultStore, run_id: int, feature: int) -> list[dict[str, Any]]:
    contexts = _read(store, run_id, CONTEXTS)
    return list(contexts.get(str(feature), contexts.get(feature, [])))  # JSON keys are strings


def context_features(store: ResultStore, run_id: int) -> list[int]:
    """The SAE features whose top contexts the run stores."""
    return sorted(int(f) for f in _read(store, run_id, CONTEXTS))


def dfa_rows(store: ResultStore, run_id: int, feature: int) -> tuple[pd.DataFrame, int, list[str]]:
    """The DFA rows of a feature, the context shown (its first stored one) and its tokens."""
    dfa = _read(store, run_id, DFA)
    rows = dfa[dfa["feature"] == feature]
    if rows.empty:
        raise NotFound(f"run {run_id} stores no DFA for feature {feature}")
    context = int(rows["context"].min())
    contexts = top_contexts(store, run_id, feature)
    tokens = list(map(str, contexts[context]["tokens"])) if context < len(contexts) else []
    return rows, context, tokens


def head_top_features(
    store: ResultStore, model_spec: str, layer: int, head: int, top: int = 5
) -> list[dict[str, Any]]:
    """The features of the newest SAE run on this model that this head writes most."""
    for run in sae_runs(store, limit=50):
        if run.model_spec != model_spec:
            continue
        try:
            shares = head_shares(store, run.id)
        except NotFound:
            continue
        mine = shares[(shares["layer"] == layer) & (shares["head"] == head)]
        mine = mine.sort_values("share", ascending=False).head(top)
        return [
            {"run": run.id, "feature": int(r.feature), "share": round(float(r.share), 4)}
            for r in mine.itertuples()
        ]
    return []
