"""``manifest.json``: what a co-author needs to reproduce a bundled run.

Holds the run's kind and full config (with its seeds picked out), the model spec and stored
model facts, the prompt set's name and content hash, the package versions and code version
that produced the run and those that exported it, the run's timestamps and the export time,
and a sha256 for every file in the bundle. ``rerun`` is the config to enqueue again
(``headlab run <kind>`` with those fields, on the prompt set in ``prompt_set.json``).
"""

from __future__ import annotations

import hashlib
import platform
from datetime import UTC, datetime
from typing import Any

from app.export.data import run_document
from storage.errors import NotFound
from storage.records import RunRecord
from storage.store import ResultStore

MANIFEST_VERSION = 1


def seeds(config: dict[str, Any]) -> dict[str, Any]:
    """Every config field that is a seed (``seed``, ``sae_seed``, ``train_seed`` …)."""
    return {k: v for k, v in config.items() if "seed" in k.lower()}


def exporter_versions() -> dict[str, str]:
    from analysis.provenance import code_version, package_versions  # torch-free metadata

    return {
        **package_versions(),
        "python": platform.python_version(),
        "code_version": code_version(),
    }


def _model(store: ResultStore, spec: str) -> dict[str, Any]:
    try:
        record = store.get_model(spec)
    except NotFound:
        return {"spec": spec}
    return {"spec": spec, "name": record.name, "facts": record.facts}


def _prompt_set(store: ResultStore, run: RunRecord) -> dict[str, Any] | None:
    if run.prompt_set_id is None:
        return None
    try:
        ps = store.get_prompt_set(run.prompt_set_id)
    except NotFound:
        return {"id": run.prompt_set_id, "missing": True}
    return {
        "id": ps.id,
        "name": ps.name,
        "content_hash": ps.content_hash,
        "n_pairs": ps.n_pairs,
        "source": ps.source,
        "model_spec": ps.model_spec,
    }


def file_entry(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def build_manifest(
    store: ResultStore, run: RunRecord, files: list[dict[str, Any]], skipped: list[str]
) -> dict[str, Any]:
    doc = run_document(run)
    return {
        "manifest_version": MANIFEST_VERSION,
        "run": {k: doc[k] for k in ("id", "kind", "status", "config", "error")},
        "model": _model(store, run.model_spec),
        "prompt_set": _prompt_set(store, run),
        "seeds": seeds(run.config),
        "versions": {"run": run.versions, "export": exporter_versions()},
        "code_version": run.code_version,
        "timestamps": {
            "created_at": doc["created_at"],
            "started_at": doc["started_at"],
            "finished_at": doc["finished_at"],
            "exported_at": datetime.now(UTC).isoformat(),
        },
        "summary_keys": sorted(run.summary),
        "files": files,
        "artifacts_not_included": skipped,
        "rerun": {"kind": run.kind, "config": run.config},
    }
