"""Exporting a run's result tables as CSV, Parquet or JSON.

Tables: ``heads`` (per-head rows: metric, layer, head, position, prompt, value — ``head`` empty
for layer-level rows, ``position``/``prompt`` empty for aggregates), ``edges`` (source, target,
score, in_circuit) and ``nodes`` (name, layer, head, score, in_circuit). CSV and Parquet hold
one table; JSON holds the run record (config, model, versions, summary) and every table, with
missing values as ``null``. Integer columns stay integers (nullable), never ``1.0``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from app.export.errors import ExportError
from app.export.figure import check_output_path, write_bytes_atomic
from storage.records import RunRecord
from storage.store import ResultStore

DATA_FORMATS = ("csv", "parquet", "json")
TABLES = ("heads", "edges", "nodes")
INT_COLUMNS = ("layer", "head", "position", "prompt")


def run_table(store: ResultStore, run_id: int, table: str) -> pd.DataFrame:
    if table not in TABLES:
        raise ExportError(f"unknown table {table!r}; choose one of: {', '.join(TABLES)}")
    if table == "heads":
        frame = store.head_results(run_id)
    elif table == "edges":
        frame = store.edges(run_id)
    else:
        frame = store.nodes(run_id)
    frame = frame.copy()
    for column in INT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype("Int64")
    return frame.reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NA/NaN become None, numpy scalars become Python numbers."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in clean.to_dict(orient="records")
    ]


def run_document(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status.value,
        "config": run.config,
        "model_spec": run.model_spec,
        "prompt_set_id": run.prompt_set_id,
        "versions": run.versions,
        "code_version": run.code_version,
        "summary": run.summary,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def table_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return frame.to_csv(index=False).encode("utf-8")
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise ExportError(f"a single table is written as csv or parquet, not {fmt!r}")


def data_bytes(store: ResultStore, run_id: int, fmt: str, table: str = "heads") -> bytes:
    """The bytes of ``headlab export data`` for one run."""
    fmt = fmt.lower()
    if fmt not in DATA_FORMATS:
        raise ExportError(f"unknown data format {fmt!r}; choose one of: {', '.join(DATA_FORMATS)}")
    run = store.get_run(run_id)
    if fmt != "json":
        return table_bytes(run_table(store, run_id, table), fmt)
    document = {
        "run": run_document(run),
        "tables": {
            "head_results": records(run_table(store, run_id, "heads")),
            "edges": records(run_table(store, run_id, "edges")),
            "nodes": records(run_table(store, run_id, "nodes")),
        },
    }
    return json.dumps(document, indent=1, allow_nan=False).encode("utf-8")


def write_data(
    store: ResultStore, run_id: int, fmt: str, out: Path | str, table: str = "heads"
) -> Path:
    path = check_output_path(out)
    data = data_bytes(store, run_id, fmt, table)
    write_bytes_atomic(path, data)
    return path
