"""Several worker processes and a reader on one database (a SQLite file, a PostgreSQL server):
no lost, duplicated or locked work.

Real processes (multiprocessing ``spawn``), a real database, no mocks. Workers loop
claim → heartbeat → finish over a queue of runs while a reader lists runs and reads results.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from pathlib import Path

import pytest

from storage import migrate
from storage.records import RunStatus
from storage.store import ResultStore
from tests.storage import store_fixtures
from tests.storage.store_fixtures import enqueue

TIMEOUT_S = 120


def _collect(out, count: int) -> list[tuple]:
    reports = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(reports) < count:
        try:
            reports.append(out.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            pytest.fail(f"only {len(reports)} of {count} processes reported within {TIMEOUT_S} s")
    return reports


def _stop(processes) -> None:
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            pytest.fail(f"process {process.name} did not exit")


@pytest.mark.slow
def test_workers_and_a_reader_share_one_database(tmp_path: Path, db_url: str) -> None:
    n_runs, n_workers = 200, 6
    migrate.upgrade(db_url)
    artifacts = str(tmp_path / "artifacts")
    with ResultStore(db_url, artifacts) as store:
        run_ids = [enqueue(store) for _ in range(n_runs)]
    ctx = multiprocessing.get_context("spawn")
    start, stop, out = ctx.Barrier(n_workers + 2), ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(
            target=store_fixtures.claim_finish_loop,
            args=(db_url, artifacts, f"worker-{i}", start, out),
            name=f"worker-{i}",
        )
        for i in range(n_workers)
    ]
    reader = ctx.Process(
        target=store_fixtures.read_loop, args=(db_url, artifacts, start, stop, out), name="reader"
    )
    for process in [*workers, reader]:
        process.start()
    start.wait(timeout=TIMEOUT_S)
    began = time.perf_counter()
    reports = _collect(out, n_workers)
    elapsed = time.perf_counter() - began
    stop.set()
    (reader_report,) = _collect(out, 1)
    _stop([*workers, reader])

    claimed = [run_id for _, ids, _ in reports for run_id in ids]
    errors = [e for _, _, errs in [*reports, reader_report] for e in errs]
    assert errors == []
    assert sorted(claimed) == run_ids  # every run claimed exactly once
    assert reader_report[1] > 0
    print(
        f"{n_workers} workers finished {n_runs} runs in {elapsed:.1f} s "
        f"({[len(ids) for _, ids, _ in reports]} each); reader did {reader_report[1]} reads"
    )
    with ResultStore(db_url, artifacts) as store:
        assert store.count_runs(status=RunStatus.FINISHED) == n_runs
        by_worker = {r.id: r.worker_id for r in store.list_runs(limit=n_runs)}
        for worker_id, ids, _ in reports:
            assert all(by_worker[i] == worker_id for i in ids)
        assert all(len(store.head_results(i)) == 8 for i in run_ids[::20])


def test_two_processes_claiming_at_once_never_get_the_same_run(tmp_path: Path, db_url: str) -> None:
    n_runs = 60
    migrate.upgrade(db_url)
    artifacts = str(tmp_path / "artifacts")
    with ResultStore(db_url, artifacts) as store:
        run_ids = [enqueue(store) for _ in range(n_runs)]
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(2), ctx.Queue()
    claimers = [
        ctx.Process(target=store_fixtures.claim_only_loop, args=(db_url, artifacts, w, start, out))
        for w in ("left", "right")
    ]
    for process in claimers:
        process.start()
    reports = _collect(out, 2)
    _stop(claimers)
    assert [e for _, _, errs in reports for e in errs] == []
    left, right = (set(ids) for _, ids, _ in reports)
    assert left.isdisjoint(right)
    assert sorted(left | right) == run_ids
