"""Sweeps (functions over a Connection): one record and its child runs, inserted together.

A sweep's runs are ordinary runs (``runs.sweep_id`` points back), so workers, the reaper, cancel
and every page treat them as any other run; the sweep adds the grid they came from and their
progress as counts by status.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select

from storage.catalog_repo import check_name
from storage.columns import checked_json, utc_now
from storage.errors import Conflict, InvalidInput, NotFound
from storage.orm import runs, sweeps
from storage.records import RunRecord, SweepRecord
from storage.runs_repo import insert_queued, run_from_row

SWEEPS_HINT = "list sweeps with `headlab sweep list`"


def _counts(conn: Connection, sweep_id: int) -> dict[str, int]:
    query = (
        select(runs.c.status, func.count())
        .where(runs.c.sweep_id == sweep_id)
        .group_by(runs.c.status)
    )
    return {status: int(n) for status, n in conn.execute(query)}


def _record(conn: Connection, row: Any) -> SweepRecord:
    m = row._mapping
    return SweepRecord(
        id=m["id"],
        name=m["name"],
        kind=m["kind"],
        spec=m["spec_json"],
        created_at=m["created_at"],
        counts=_counts(conn, m["id"]),
    )


def add_sweep(
    conn: Connection, name: str, kind: str, spec: dict[str, Any], children: list[dict[str, Any]]
) -> tuple[SweepRecord, list[RunRecord]]:
    """Insert the sweep and its queued runs (``children``: ``insert_queued`` values)."""
    check_name(name, "sweep")
    if not children:
        raise InvalidInput(f"sweep {name!r} has no runs; give at least one model")
    if conn.execute(select(sweeps.c.id).where(sweeps.c.name == name)).first():
        raise Conflict(f"a sweep named {name!r} already exists; choose another --name")
    row = conn.execute(
        insert(sweeps)
        .values(
            name=name,
            kind=kind,
            spec_json=checked_json(dict(spec), f"sweep {name!r} spec"),
            created_at=utc_now(),
        )
        .returning(*sweeps.c)
    ).one()
    children_runs = [insert_queued(conn, {**values, "sweep_id": row.id}) for values in children]
    return _record(conn, row), children_runs


def get_sweep(conn: Connection, name_or_id: str | int) -> SweepRecord:
    row = None
    if isinstance(name_or_id, str):
        row = conn.execute(select(sweeps).where(sweeps.c.name == name_or_id)).first()
    if row is None and str(name_or_id).isdigit():
        row = conn.execute(select(sweeps).where(sweeps.c.id == int(name_or_id))).first()
    if row is None:
        raise NotFound(f"no sweep is named or has the id {name_or_id!r}; {SWEEPS_HINT}")
    return _record(conn, row)


def list_sweeps(conn: Connection, limit: int = 100) -> list[SweepRecord]:
    rows = conn.execute(select(sweeps).order_by(sweeps.c.id.desc()).limit(limit)).all()
    return [_record(conn, row) for row in rows]


def sweep_runs(conn: Connection, sweep_id: int) -> list[RunRecord]:
    query = select(runs).where(runs.c.sweep_id == sweep_id).order_by(runs.c.id)
    return [run_from_row(row) for row in conn.execute(query)]
