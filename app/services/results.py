"""Torch-free reads of stored run results for the web pages, with a small per-run cache.

A finished run never changes, so its per-head rows are read once and kept (a few runs at a
time, least recently used first out); reads of unfinished runs always go to the store.

The row convention (aggregate, layer-level, per-position rows) lives in :mod:`storage.grids`;
this module only caches its tables. Attention patterns come from the ``patterns.safetensors``
artifact of the run or, for runs that have none (DLA, patching…), of the newest finished
``heads`` run on the same model, read with safetensors' numpy API (one prompt at a time).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
from safetensors import safe_open

from storage.errors import NotFound
from storage.grids import HeadGrid, PositionGrid, ResultTables
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

PATTERNS = "patterns.safetensors"
TOKENS = "tokens.json"


class ResultsReader:
    """Reads and caches what the pages show. Thread-safe (Flask serves requests in threads)."""

    def __init__(self, store: ResultStore, cache_runs: int = 8) -> None:
        self.store = store
        self._cache: OrderedDict[int, ResultTables] = OrderedDict()
        self._size = cache_runs
        self._lock = threading.Lock()
        self._related: dict[int, tuple[float, list[RunRecord]]] = {}
        self._memo: OrderedDict[str, Any] = OrderedDict()

    def tables(self, run_id: int) -> ResultTables:
        with self._lock:
            if run_id in self._cache:
                self._cache.move_to_end(run_id)
                return self._cache[run_id]
        run = self.store.get_run(run_id)
        tables = self.store.result_tables(run_id)
        if run.status == RunStatus.FINISHED:
            with self._lock:
                self._cache[run_id] = tables
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return tables

    def forget(self, run_id: int) -> None:
        with self._lock:
            self._cache.pop(run_id, None)
            self._memo.clear()

    def memo(self, key: str, build: Any, size: int = 64) -> Any:
        """``build()`` once per key (least recently used out): for things derived only from
        finished runs, which never change."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = build()
        with self._lock:
            self._memo[key] = value
            while len(self._memo) > size:
                self._memo.popitem(last=False)
        return value

    def head_grid(self, run_id: int, metric: str) -> HeadGrid:
        return self.tables(run_id).head_grid(metric)

    def metrics(self, run_id: int) -> list[str]:
        return self.tables(run_id).head_metrics()

    def position_metrics(self, run_id: int) -> list[str]:
        return self.tables(run_id).position_metrics()

    def position_grid(
        self, run_id: int, metric: str, head: tuple[int, int] | None = None
    ) -> PositionGrid:
        return self.tables(run_id).position_grid(metric, head)

    def position_grid_has_heads(self, run_id: int, metric: str) -> bool:
        rows = self.tables(run_id).per_position.get(metric)
        return rows is not None and bool(rows["head"].notna().any())

    def head_scores(self, run_id: int, layer: int, head: int) -> list[dict[str, Any]]:
        """The head's aggregate value in every metric of the run, with its rank by |value|."""
        out = []
        tables = self.tables(run_id)
        for metric in tables.head_metrics():
            grid = tables.head_grid(metric)
            value = grid.value(layer, head)
            if value is not None:
                rank = f"{grid.rank(value)} / {len(grid.frame)}"
                out.append({"metric": metric, "value": value, "rank": rank})
        return out

    def related_runs(self, run: RunRecord, ttl_s: float = 5.0) -> list[RunRecord]:
        """The newest finished run of every other kind on the same model and prompt set,
        so a head's detail can show its DLA, patching and ablation effects together."""
        now = time.monotonic()
        hit = self._related.get(run.id)
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        newest: dict[str, RunRecord] = {}
        for other in self.store.list_runs(status=RunStatus.FINISHED, limit=500):
            same = other.model_spec == run.model_spec and other.prompt_set_id == run.prompt_set_id
            if same and other.id != run.id and other.kind != run.kind:
                newest.setdefault(other.kind, other)
        found = sorted(newest.values(), key=lambda r: r.kind)
        self._related[run.id] = (now, found)
        return found

    # -- attention patterns ---------------------------------------------------------------

    def pattern_run(self, run: RunRecord) -> RunRecord | None:
        """The run whose patterns artifact shows ``run``'s heads: itself, else the newest
        finished ``heads`` run on the same model (same prompt set preferred)."""
        key = -run.id  # cached next to related runs, negative keys
        hit = self._related.get(key)
        if hit is not None and time.monotonic() - hit[0] < 5.0:
            return hit[1][0] if hit[1] else None
        chosen = self._find_pattern_run(run)
        self._related[key] = (time.monotonic(), [chosen] if chosen else [])
        return chosen

    def _find_pattern_run(self, run: RunRecord) -> RunRecord | None:
        if self._has_artifact(run.id, PATTERNS):
            return run
        fallback = None
        for other in self.store.list_runs(kind="heads", status=RunStatus.FINISHED, limit=200):
            if other.model_spec != run.model_spec or not self._has_artifact(other.id, PATTERNS):
                continue
            if other.prompt_set_id == run.prompt_set_id:
                return other
            fallback = fallback or other
        return fallback

    def _has_artifact(self, run_id: int, name: str) -> bool:
        try:
            self.store.get_artifact(run_id, name)
        except NotFound:
            return False
        return True

    def prompt_tokens(self, run_id: int) -> list[list[str]]:
        return self.memo(f"tokens:{run_id}", lambda: self._read_tokens(run_id))

    def _read_tokens(self, run_id: int) -> list[list[str]]:
        try:
            artifact = self.store.open_artifact(run_id, TOKENS)
        except NotFound:
            return []
        with open(artifact.path, encoding="utf-8") as fh:
            return [list(map(str, p)) for p in json.load(fh).get("prompts", [])]

    def pattern(
        self, run_id: int, prompt: int, layer: int, head: int
    ) -> tuple[np.ndarray, list[str]]:
        """One head's [q, k] pattern on one prompt, float32, with that prompt's tokens."""
        artifact = self.store.open_artifact(run_id, PATTERNS)
        key = f"prompt{prompt}"
        with safe_open(artifact.path, framework="np") as fh:
            keys = list(fh.keys())
            if key not in keys:
                raise NotFound(
                    f"run {run_id} has no pattern for --prompt {prompt}; "
                    f"stored prompts: 0..{len(keys) - 1}"
                )
            stored = fh.get_slice(key)
            n_layers, n_heads = stored.get_shape()[:2]
            if not (0 <= layer < n_layers and 0 <= head < n_heads):
                raise NotFound(
                    f"no head {layer}.{head}: the model has layers 0..{n_layers - 1} "
                    f"and heads 0..{n_heads - 1}"
                )
            block = stored[layer : layer + 1, head : head + 1]
        matrix = np.asarray(block, dtype=np.float32)[0, 0]
        tokens = self.prompt_tokens(run_id)
        labels = tokens[prompt] if prompt < len(tokens) else []
        if len(labels) != matrix.shape[0]:
            labels = [str(i) for i in range(matrix.shape[0])]
        return matrix, labels
