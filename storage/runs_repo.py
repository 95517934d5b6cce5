"""The run lifecycle as SQL on the ``runs`` table (functions over an open Connection).

States: QUEUED → RUNNING → FINISHED | FAILED | CANCELLED, and QUEUED → CANCELLED.
Every transition is ONE conditional ``UPDATE … WHERE status = …`` so two processes can never
both make it: claiming picks the oldest QUEUED run and flips it to RUNNING in the same statement
(``UPDATE … WHERE id = (SELECT … LIMIT 1) … RETURNING``; on SQLite inside ``BEGIN IMMEDIATE``, on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``). When a conditional update matches nothing, the
caller is told why: ``NotFound`` (no such run) or ``Conflict`` (it is in another state).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.engine import Row

from storage.columns import utc_now
from storage.errors import Conflict, InvalidInput, NotFound
from storage.orm import runs
from storage.records import RunRecord, RunStatus

LIST_HINT = "list run ids with `headlab runs list`"


def run_from_row(row: Row[Any]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=m["id"],
        kind=m["kind"],
        status=RunStatus(m["status"]),
        config=m["config_json"],
        model_spec=m["model_spec"],
        prompt_set_id=m["prompt_set_id"],
        versions=m["versions_json"],
        code_version=m["code_version"],
        progress=m["progress"],
        message=m["message"],
        error=m["error"],
        summary=m["summary_json"] or {},
        worker_id=m["worker_id"],
        cancel_requested=bool(m["cancel_requested"]),
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        heartbeat_at=m["heartbeat_at"],
        sweep_id=m["sweep_id"],
    )


def not_found(run_id: int) -> NotFound:
    return NotFound(f"run {run_id} does not exist; {LIST_HINT}")


def get(conn: Connection, run_id: int) -> RunRecord:
    row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise not_found(run_id)
    return run_from_row(row)


def insert_queued(conn: Connection, values: dict[str, Any]) -> RunRecord:
    row = conn.execute(
        insert(runs)
        .values(status=RunStatus.QUEUED.value, progress=0.0, message="queued", **values)
        .returning(*runs.c)
    ).one()
    return run_from_row(row)


def claim_next(conn: Connection, worker_id: str, kinds: list[str] | None) -> RunRecord | None:
    oldest = select(runs.c.id).where(runs.c.status == RunStatus.QUEUED.value)
    if kinds is not None:
        oldest = oldest.where(runs.c.kind.in_(kinds))
    oldest = oldest.order_by(runs.c.id).limit(1)
    if conn.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    now = utc_now()
    row = conn.execute(
        update(runs)
        .where(runs.c.id == oldest.scalar_subquery(), runs.c.status == RunStatus.QUEUED.value)
        .values(
            status=RunStatus.RUNNING.value,
            worker_id=worker_id,
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
            message="started",
        )
        .returning(*runs.c)
    ).first()
    return None if row is None else run_from_row(row)


def transition(
    conn: Connection, run_id: int, allowed_from: tuple[RunStatus, ...], values: dict[str, Any]
) -> RunRecord | None:
    """Apply ``values`` if the run is in one of ``allowed_from``; None if it is not (or absent)."""
    row = conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_([s.value for s in allowed_from]))
        .values(**values)
        .returning(*runs.c)
    ).first()
    return None if row is None else run_from_row(row)


def refuse(conn: Connection, run_id: int, action: str) -> Conflict | NotFound:
    """The error for a transition that matched nothing: the run is absent or in another state."""
    row = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).first()
    if row is None:
        return not_found(run_id)
    return Conflict(f"run {run_id} is {row.status}; cannot {action}")


def heartbeat(conn: Connection, run_id: int, worker_id: str, progress: float, message: str) -> bool:
    row = conn.execute(
        update(runs)
        .where(
            runs.c.id == run_id,
            runs.c.status == RunStatus.RUNNING.value,
            runs.c.worker_id == worker_id,
        )
        .values(heartbeat_at=utc_now(), progress=min(1.0, max(0.0, progress)), message=message)
        .returning(runs.c.cancel_requested)
    ).first()
    # No row: the run was reaped, cancelled or deleted meanwhile; the worker must stop too.
    return True if row is None else bool(row.cancel_requested)


def request_cancel(conn: Connection, run_id: int) -> RunRecord:
    now = utc_now()
    done = transition(
        conn,
        run_id,
        (RunStatus.QUEUED,),
        {"status": RunStatus.CANCELLED.value, "finished_at": now, "message": "cancelled"},
    )
    if done is None:
        done = transition(
            conn,
            run_id,
            (RunStatus.RUNNING,),
            {"cancel_requested": True, "message": "cancel requested"},
        )
    if done is not None:
        return done
    current = get(conn, run_id)  # raises NotFound
    raise Conflict(f"run {run_id} is already {current.status.value}; nothing to cancel")


def reap_stale(conn: Connection, stale_after_s: float) -> list[int]:
    cutoff = utc_now() - timedelta(seconds=stale_after_s)
    last_seen = func.coalesce(runs.c.heartbeat_at, runs.c.started_at)
    stale = conn.execute(
        select(runs.c.id, runs.c.worker_id, runs.c.heartbeat_at).where(
            runs.c.status == RunStatus.RUNNING.value, last_seen < cutoff
        )
    ).fetchall()
    reaped = []
    for row in stale:
        error = (
            f"worker {row.worker_id} stopped sending heartbeats (last at "
            f"{_when(row.heartbeat_at)}); the run was marked failed"
        )
        values = {"status": RunStatus.FAILED.value, "error": error, "finished_at": utc_now()}
        if transition(conn, row.id, (RunStatus.RUNNING,), values) is not None:
            reaped.append(row.id)
    return reaped


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _filters(kind: str | None, status: RunStatus | str | None) -> list[Any]:
    conditions = []
    if kind is not None:
        conditions.append(runs.c.kind == kind)
    if status is not None:
        conditions.append(runs.c.status == parse_status(status).value)
    return conditions


def parse_status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(str(status).upper())
    except ValueError:
        valid = ", ".join(s.value for s in RunStatus)
        raise InvalidInput(f"unknown run status {status!r}; use one of {valid}") from None


def list_runs(
    conn: Connection,
    kind: str | None,
    status: RunStatus | str | None,
    limit: int,
    offset: int,
    oldest_first: bool = False,
) -> list[RunRecord]:
    query = (
        select(runs)
        .where(*_filters(kind, status))
        .order_by(runs.c.id if oldest_first else runs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [run_from_row(row) for row in conn.execute(query)]


def count_runs(conn: Connection, kind: str | None, status: RunStatus | str | None) -> int:
    query = select(func.count()).select_from(runs).where(*_filters(kind, status))
    return int(conn.execute(query).scalar_one())


def ensure_deletable(conn: Connection, run_id: int) -> None:
    run = get(conn, run_id)
    if run.status is RunStatus.RUNNING:
        raise Conflict(
            f"run {run_id} is RUNNING; cancel it first with `headlab runs cancel {run_id}`, "
            f"then delete it"
        )


def delete_row(conn: Connection, run_id: int) -> None:
    conn.execute(delete(runs).where(runs.c.id == run_id))
