"""A run's reproducibility bundle: one zip with figures, data and ``manifest.json``.

Layout::

    manifest.json            run config, model, prompt-set hash, versions, seeds, timestamps,
                             sha256 of every file (see app.export.manifest)
    figures/<name>.<fmt>     every figure the run supports, at one paper size
    data/head_results.csv|parquet, data/edges.csv, data/nodes.csv, data/run.json
    data/prompt_set.json     the prompt pairs the run used, to re-import
    artifacts/<name>         the run's artifact files up to ``max_artifact_mb`` each

All figures go through one :class:`FigureRenderer` (the process-wide one unless given): one
Chromium for the whole bundle. The zip is
written to a temporary sibling and renamed, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

from app.export.data import records, run_document, run_table, table_bytes
from app.export.figure import check_output_path, render_paper_figure
from app.export.manifest import build_manifest, file_entry
from app.export.presets import DEFAULT_DPI, PageSize, check_format, resolve_size
from app.export.render import FigureRenderer, shared_renderer
from app.services.figures import build_figure, bundle_specs, safe_stem
from app.services.results import ResultsReader
from storage.errors import NotFound
from storage.records import RunRecord
from storage.store import ResultStore

log = logging.getLogger(__name__)


def _prompt_set_json(store: ResultStore, run: RunRecord) -> bytes | None:
    if run.prompt_set_id is None:
        return None
    try:
        ps = store.get_prompt_set(run.prompt_set_id)
        pairs = store.get_pairs(run.prompt_set_id)
    except NotFound:
        return None
    doc = {
        "name": ps.name,
        "content_hash": ps.content_hash,
        "source": ps.source,
        "model_spec": ps.model_spec,
        "meta": ps.meta,
        "pairs": [dataclasses.asdict(p) for p in pairs],
    }
    return json.dumps(doc, indent=1).encode("utf-8")


def _data_files(store: ResultStore, run: RunRecord) -> dict[str, bytes]:
    heads = run_table(store, run.id, "heads")
    files = {
        "data/head_results.csv": table_bytes(heads, "csv"),
        "data/head_results.parquet": table_bytes(heads, "parquet"),
    }
    for table in ("edges", "nodes"):
        frame = run_table(store, run.id, table)
        if not frame.empty:
            files[f"data/{table}.csv"] = table_bytes(frame, "csv")
    document = {"run": run_document(run), "tables": {"head_results": records(heads)}}
    files["data/run.json"] = json.dumps(document, indent=1, allow_nan=False).encode("utf-8")
    prompt_set = _prompt_set_json(store, run)
    if prompt_set is not None:
        files["data/prompt_set.json"] = prompt_set
    return files


def _figure_files(
    store: ResultStore,
    run: RunRecord,
    formats: tuple[str, ...],
    size: PageSize,
    dpi: float,
    renderer: FigureRenderer,
) -> tuple[dict[str, bytes], list[str]]:
    files, failed = {}, []
    reader = ResultsReader(store)
    for stem, spec in bundle_specs(reader, run):
        try:
            fig = build_figure(reader, spec)
            for fmt in formats:
                files[f"figures/{stem}.{fmt}"] = render_paper_figure(
                    fig, fmt, size, dpi=dpi, renderer=renderer
                )
        except (ValueError, NotFound) as exc:  # ExportError is a ValueError
            log.warning("bundle of run %s: skipped figure %s: %s", run.id, stem, exc)
            failed.append(f"{stem}: {exc}")
    return files, failed


def write_bundle(
    store: ResultStore,
    run_id: int,
    out: Path | str,
    *,
    formats: tuple[str, ...] = ("pdf", "png"),
    size: PageSize | None = None,
    dpi: float = DEFAULT_DPI,
    max_artifact_mb: float = 20.0,
    renderer: FigureRenderer | None = None,
) -> Path:
    """Write the bundle of run ``run_id`` to ``out`` (a ``.zip``); returns its path."""
    path = check_output_path(out, suffixes=("zip",))
    formats = tuple(check_format(f) for f in formats)
    run = store.get_run(run_id)
    figures, failed = _figure_files(
        store, run, formats, size or resolve_size("column"), dpi, renderer or shared_renderer()
    )
    files = {**figures, **_data_files(store, run)}
    artifacts, skipped = {}, []
    for artifact in store.artifacts(run_id):
        if artifact.size > max_artifact_mb * 1e6:
            skipped.append(f"{artifact.name} ({artifact.size} bytes, sha256 {artifact.sha256})")
        else:
            store.verify_artifact(artifact)
            artifacts[f"artifacts/{safe_stem(artifact.name)}"] = Path(artifact.path).read_bytes()
    files.update(artifacts)
    manifest = build_manifest(store, run, [file_entry(n, b) for n, b in files.items()], skipped)
    manifest["figures_failed"] = failed
    files["manifest.json"] = json.dumps(manifest, indent=1, default=str).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
