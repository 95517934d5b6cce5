"""Launching a run: one validated config → one queued ``runs`` row → (optionally) run inline.

The CLI (``headlab run KIND``), the Python API (``headlab.Lab.run``) and the web Launch form all
go through :func:`enqueue_config`; the CLI and the API run inline through :func:`execute_inline`,
which claims the run in this process and hands it to the same worker code a queued run gets.
Torch is imported only inside :func:`execute_inline` (the web process never runs inline).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from analysis.configs import RunConfigBase, parse_run_config, run_kinds
from analysis.configs.catalog import CATALOG_KINDS
from analysis.provenance import code_version, package_versions
from storage.errors import Conflict, NotFound
from storage.records import RunRecord
from storage.store import ResultStore

# (store, run id) -> the run's final record, showing progress however the caller likes.
Watcher = Callable[[ResultStore, int], RunRecord]


class LaunchRefused(ValueError):
    """A run cannot be launched as asked; the message names the field and the fix."""


def analysis_kinds() -> list[str]:
    """Run kinds a user launches (catalog kinds are driven by `prompts …` / `models add`)."""
    return sorted(k for k in run_kinds() if k not in CATALOG_KINDS)


def make_config(
    kind: str, model: str, prompt_set: str | None, options: dict[str, Any]
) -> RunConfigBase:
    """The validated config of a run; raises ``ConfigError`` naming the bad field."""
    data: dict[str, Any] = {"kind": kind, "model": model, **options}
    if prompt_set is not None:
        data["prompt_set"] = prompt_set
    return parse_run_config(data)


def stored_set_id(store: ResultStore, name: str) -> int:
    """The id of prompt set ``name``; LaunchRefused (field ``prompt_set``) when none is stored."""
    try:
        return store.get_prompt_set(name).id
    except NotFound:
        raise LaunchRefused(
            f"prompt_set: no prompt set named {name!r}; generate or import one "
            "first (`headlab prompts list` shows the stored ones)"
        ) from None


def enqueue_config(store: ResultStore, config: RunConfigBase) -> RunRecord:
    """Insert ``config`` as a QUEUED run with its model, prompt set and provenance."""
    prompt_set_id = None if config.prompt_set is None else stored_set_id(store, config.prompt_set)
    return store.enqueue_run(
        config.kind,
        config.model_dump(mode="json"),
        config.model,
        prompt_set_id,
        package_versions(),
        code_version(),
    )


def execute_inline(
    store: ResultStore, run: RunRecord, watch: Watcher, runner: Any = None
) -> RunRecord:
    """Run ``run`` in this process unless a worker has claimed it already; wait for its end.

    ``watch`` polls the run and shows its progress; an interrupt of the watch cancels the run.
    Pass the same ``runner`` (an ``analysis.worker.Worker``) to keep its model loaded.
    """
    if runner is None:
        from analysis.worker import Worker

        runner = Worker(store)
    thread = None
    try:
        claimed: RunRecord | None = store.claim_run(run.id, runner.worker_id)
    except Conflict:  # a background worker took it first: follow it
        claimed = None
    if claimed is not None:
        thread = threading.Thread(target=runner.execute, args=(claimed,), daemon=True)
        thread.start()
    try:
        final = watch(store, run.id)
    except KeyboardInterrupt:
        store.request_cancel(run.id)
        if thread is not None:
            thread.join()
        raise
    if thread is not None:
        thread.join()
    return store.get_run(final.id)


def poll_until_done(
    store: ResultStore, run_id: int, on_update: Callable[[RunRecord], None], every_s: float = 0.2
) -> RunRecord:
    """Call ``on_update`` with the run's record every ``every_s`` until it is terminal."""
    tick = threading.Event()
    while True:
        run = store.get_run(run_id)
        on_update(run)
        if run.status.is_terminal:
            return run
        tick.wait(every_s)
