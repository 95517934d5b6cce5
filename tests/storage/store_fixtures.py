"""Helpers shared by the store tests (imported by name; also run inside spawned processes)."""

from __future__ import annotations

from storage.records import HeadResultIn, RunOutput
from storage.store import ResultStore


def enqueue(store: ResultStore, kind: str = "head_stats", prompt_set_id: int | None = None) -> int:
    config = {"kind": kind, "model": "zoo:induction-2l", "seed": 0}
    versions = {"headlab": "0.1.0", "torch": "2.13.0"}
    return store.enqueue_run(kind, config, "zoo:induction-2l", prompt_set_id, versions, "abc123").id


def head_rows(n_layers: int = 2, n_heads: int = 4, metric: str = "score") -> list[HeadResultIn]:
    return [
        HeadResultIn(metric, layer, head, float(layer * 10 + head))
        for layer in range(n_layers)
        for head in range(n_heads)
    ]


def small_output() -> RunOutput:
    return RunOutput(head_results=head_rows(), summary={"metric_clean": 1.5})


# -- processes for the concurrency tests (module-level so `spawn` can import them) ----------


def claim_finish_loop(db_url: str, artifacts_dir: str, worker_id: str, start, out) -> None:
    """A worker: claim → heartbeat → finish until the queue is empty; reports what it claimed."""
    import traceback

    claimed: list[int] = []
    errors: list[str] = []
    store = ResultStore(db_url, artifacts_dir)
    start.wait()
    try:
        while (run := store.claim_next_run(worker_id)) is not None:
            claimed.append(run.id)
            if store.heartbeat(run.id, worker_id, 0.5, "half way"):
                errors.append(f"run {run.id}: unexpected cancel")
            output = RunOutput(head_results=head_rows(), summary={"worker": worker_id})
            store.finish_run(run.id, output)
    except Exception:  # noqa: BLE001 — reported to the test, which fails on it
        errors.append(traceback.format_exc())
    store.close()
    out.put((worker_id, claimed, errors))


def claim_only_loop(db_url: str, artifacts_dir: str, worker_id: str, start, out) -> None:
    """A claimer that races another one: claims as fast as it can and reports the ids."""
    import traceback

    claimed: list[int] = []
    errors: list[str] = []
    store = ResultStore(db_url, artifacts_dir)
    start.wait()
    try:
        while (run := store.claim_next_run(worker_id)) is not None:
            claimed.append(run.id)
    except Exception:  # noqa: BLE001
        errors.append(traceback.format_exc())
    store.close()
    out.put((worker_id, claimed, errors))


def read_loop(db_url: str, artifacts_dir: str, start, stop, out) -> None:
    """A reader (the web app): lists runs and reads results of finished ones until stopped."""
    import traceback

    from storage.records import RunStatus

    reads = 0
    errors: list[str] = []
    store = ResultStore(db_url, artifacts_dir)
    start.wait()
    try:
        while not stop.is_set():
            runs = store.list_runs(limit=50)
            store.count_runs(status=RunStatus.RUNNING)
            for run in runs:
                if run.status is RunStatus.FINISHED:
                    rows = len(store.head_results(run.id))
                    if rows != len(head_rows()):
                        errors.append(f"run {run.id} is FINISHED with {rows} rows")
                    break
            reads += 1
    except Exception:  # noqa: BLE001
        errors.append(traceback.format_exc())
    store.close()
    out.put(("reader", reads, errors))
