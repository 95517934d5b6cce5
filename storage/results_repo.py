"""What a finished run wrote: per-head results, artifacts, circuit edges and nodes.

Writing happens in two steps (driven by ``ResultStore.finish_run``): ``prepare`` validates the
whole ``RunOutput`` up front and turns it into plain row dicts — a NaN or infinite value, a
negative layer, a duplicate artifact name is refused here with an error naming the offending
row, before anything is written — then ``insert_all`` bulk-inserts every row inside the same
transaction that flips the run to FINISHED (one ``executemany`` per table).

Reading returns pandas DataFrames with fixed columns (pandas is imported on first read);
nullable integer columns (``head``, ``position``, ``prompt``, node ``layer``/``head``) use
pandas' ``Int64`` dtype.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, insert, select

from storage.artifacts import ArtifactFiles
from storage.columns import checked_json, utc_now
from storage.errors import InvalidInput, NotFound
from storage.orm import artifacts, circuit_edges, circuit_nodes, head_results
from storage.records import ArtifactIn, ArtifactRecord, RunOutput

if TYPE_CHECKING:
    import pandas as pd

HEAD_DTYPES = {
    "metric": "object",
    "layer": "int64",
    "head": "Int64",
    "position": "Int64",
    "prompt": "Int64",
    "value": "float64",
}
EDGE_DTYPES = {"source": "object", "target": "object", "score": "float64", "in_circuit": "bool"}
NODE_DTYPES = {
    "name": "object",
    "layer": "Int64",
    "head": "Int64",
    "score": "float64",
    "in_circuit": "bool",
}
HEAD_COLUMNS = list(HEAD_DTYPES)
EDGE_COLUMNS = list(EDGE_DTYPES)
NODE_COLUMNS = list(NODE_DTYPES)


def _frame(rows: Sequence[Any], dtypes: dict[str, str]) -> pd.DataFrame:
    """A DataFrame built column by column (several times faster than row by row)."""
    import pandas as pd  # lazily: workers that only claim and finish runs never need it

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(dtypes)
    return pd.DataFrame(
        {
            name: pd.array(list(values), dtype=dtype)
            for (name, dtype), values in zip(dtypes.items(), columns, strict=True)
        }
    )


@dataclass
class PreparedOutput:
    head_rows: list[dict[str, Any]] = field(default_factory=list)
    edge_rows: list[dict[str, Any]] = field(default_factory=list)
    node_rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _index(value: Any, what: str, nullable: bool) -> int | None:
    if value is None and nullable:
        return None
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidInput(f"{what} must be an integer, got {value!r}") from None
    if number < 0:
        raise InvalidInput(f"{what} must be >= 0, got {number}")
    return number


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidInput(
            f"{what} is {number}; values must be finite numbers (skip undefined values or "
            f"report them as an error in the analysis); nothing was written"
        )
    return number


def _head_rows(run_id: int, output: RunOutput) -> list[dict[str, Any]]:
    rows = []
    for i, r in enumerate(output.head_results):
        where = (
            f"run {run_id}: head result {i} (metric {r.metric!r}, layer {r.layer}, head {r.head}"
        )
        where += f", position {r.position})" if r.position is not None else ")"
        if not isinstance(r.metric, str) or not r.metric:
            raise InvalidInput(f"{where}: the metric name must be non-empty text")
        rows.append(
            {
                "run_id": run_id,
                "metric": r.metric,
                "layer": _index(r.layer, f"{where}: layer", False),
                "head": _index(r.head, f"{where}: head", True),
                "position": _index(r.position, f"{where}: position", True),
                "prompt": _index(r.prompt, f"{where}: prompt", True),
                "value": _finite(r.value, f"{where}: value"),
            }
        )
    return rows


def prepare(run_id: int, output: RunOutput) -> PreparedOutput:
    """Validate everything a run wants to write; raises InvalidInput naming the bad row."""
    names = [a.name for a in output.artifacts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates or not all(names):
        raise InvalidInput(f"run {run_id}: artifact names must be unique and non-empty: {names}")
    edges = [
        {
            "run_id": run_id,
            "source": str(e.source),
            "target": str(e.target),
            "score": _finite(e.score, f"run {run_id}: edge {e.source} -> {e.target} score"),
            "in_circuit": bool(e.in_circuit),
        }
        for e in output.edges
    ]
    nodes = [
        {
            "run_id": run_id,
            "name": str(n.name),
            "layer": _index(n.layer, f"run {run_id}: node {n.name} layer", True),
            "head": _index(n.head, f"run {run_id}: node {n.name} head", True),
            "score": _finite(n.score, f"run {run_id}: node {n.name} score"),
            "in_circuit": bool(n.in_circuit),
        }
        for n in output.nodes
    ]
    summary = checked_json(dict(output.summary), f"run {run_id}: the summary")
    return PreparedOutput(_head_rows(run_id, output), edges, nodes, summary)


def insert_all(
    conn: Connection,
    run_id: int,
    prepared: PreparedOutput,
    stored: list[tuple[ArtifactIn, str, int, str]],
    files: ArtifactFiles,
) -> None:
    """Insert every row of a finished run (call inside the FINISHED transaction)."""
    for table, rows in (
        (head_results, prepared.head_rows),
        (circuit_edges, prepared.edge_rows),
        (circuit_nodes, prepared.node_rows),
    ):
        if rows:
            conn.execute(insert(table), rows)
    if not stored:
        return
    now = utc_now()
    artifact_rows = []
    for art, sha, size, relpath in stored:
        if not files.exists(relpath):  # removed by a concurrent delete_run: store it again
            files.put(art.path, art.name)
        artifact_rows.append(
            {
                "run_id": run_id,
                "name": art.name,
                "kind": art.kind,
                "sha256": sha,
                "size": size,
                "media_type": art.media_type,
                "relpath": relpath,
                "meta_json": checked_json(dict(art.meta), f"artifact {art.name!r} meta"),
                "created_at": now,
            }
        )
    conn.execute(insert(artifacts), artifact_rows)


def delete_for_run(conn: Connection, run_id: int) -> list[str]:
    """Delete a run's result rows; returns artifact files no other run references."""
    relpaths = set(
        conn.execute(select(artifacts.c.relpath).where(artifacts.c.run_id == run_id)).scalars()
    )
    for table in (head_results, circuit_edges, circuit_nodes, artifacts):
        conn.execute(delete(table).where(table.c.run_id == run_id))
    return unreferenced(conn, relpaths)


def unreferenced(conn: Connection, relpaths: set[str]) -> list[str]:
    """Those of ``relpaths`` that no artifact row references."""
    if not relpaths:
        return []
    still_used = conn.execute(
        select(artifacts.c.relpath).where(artifacts.c.relpath.in_(relpaths))
    ).scalars()
    return sorted(relpaths - set(still_used))


def metrics(conn: Connection, run_id: int) -> list[str]:
    query = select(head_results.c.metric).where(head_results.c.run_id == run_id).distinct()
    return sorted(conn.execute(query).scalars())


def head_frame(conn: Connection, run_id: int, metric: str | None) -> pd.DataFrame:
    query = select(*(head_results.c[c] for c in HEAD_COLUMNS)).where(
        head_results.c.run_id == run_id
    )
    if metric is not None:
        query = query.where(head_results.c.metric == metric)
    query = query.order_by(
        head_results.c.metric,
        head_results.c.layer,
        head_results.c.head,
        head_results.c.position,
        head_results.c.prompt,
    )
    return _frame(conn.execute(query).fetchall(), HEAD_DTYPES)


def edge_frame(conn: Connection, run_id: int) -> pd.DataFrame:
    query = (
        select(*(circuit_edges.c[c] for c in EDGE_COLUMNS))
        .where(circuit_edges.c.run_id == run_id)
        .order_by(circuit_edges.c.id)
    )
    return _frame(conn.execute(query).fetchall(), EDGE_DTYPES)


def node_frame(conn: Connection, run_id: int) -> pd.DataFrame:
    query = (
        select(*(circuit_nodes.c[c] for c in NODE_COLUMNS))
        .where(circuit_nodes.c.run_id == run_id)
        .order_by(circuit_nodes.c.id)
    )
    return _frame(conn.execute(query).fetchall(), NODE_DTYPES)


def _artifact(row: Any, files: ArtifactFiles) -> ArtifactRecord:
    m = row._mapping
    return ArtifactRecord(
        id=m["id"],
        run_id=m["run_id"],
        name=m["name"],
        kind=m["kind"],
        sha256=m["sha256"],
        size=m["size"],
        media_type=m["media_type"],
        path=str(files.path(m["relpath"]).resolve()),
        meta=m["meta_json"],
        created_at=m["created_at"],
    )


def artifact_list(conn: Connection, run_id: int, files: ArtifactFiles) -> list[ArtifactRecord]:
    query = select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.name)
    return [_artifact(row, files) for row in conn.execute(query)]


def all_artifacts(conn: Connection, files: ArtifactFiles) -> list[ArtifactRecord]:
    """Every artifact row of every run, in id order (for the store's integrity check)."""
    return [
        _artifact(row, files) for row in conn.execute(select(artifacts).order_by(artifacts.c.id))
    ]


def artifact(conn: Connection, run_id: int, name: str, files: ArtifactFiles) -> ArtifactRecord:
    query = select(artifacts).where(artifacts.c.run_id == run_id, artifacts.c.name == name)
    row = conn.execute(query).first()
    if row is None:
        names = [a.name for a in artifact_list(conn, run_id, files)]
        raise NotFound(
            f"run {run_id} has no artifact named {name!r}; it has: {', '.join(names) or 'none'}"
        )
    return _artifact(row, files)


def count_rows(conn: Connection, run_id: int) -> int:
    """Total result rows of a run (used by tests and `runs show`)."""
    total = 0
    for table in (head_results, circuit_edges, circuit_nodes, artifacts):
        query = select(func.count()).select_from(table).where(table.c.run_id == run_id)
        total += int(conn.execute(query).scalar_one())
    return total
