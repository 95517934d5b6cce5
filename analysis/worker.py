"""The worker: claims queued runs from the store, runs them, and commits their results.

Lifecycle of one run (see docs/ARCHITECTURE.md): QUEUED → claimed atomically → RUNNING (heartbeat
every ``heartbeat_s`` from a background thread, progress from the job) → FINISHED (all result rows
and the status in one transaction) | FAILED (error text) | CANCELLED. The loaded model stays
resident between jobs. A worker that dies leaves its run RUNNING with a stale heartbeat; the
reaper (any worker's poll, or the serve supervisor) then marks it FAILED and removes what it left
(``ResultStore.recover_after_crashes``: its work folder under ``$HEADLAB_HOME/work``, stored
files no row references, half-copied temp files). No partial results are ever written, because
nothing is written before the final transaction. A store that cannot be reached or written (a
dropped database connection, a full disk) does not stop the worker: it logs why, waits and
tries again.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analysis.configs import ConfigError, RunConfigBase, parse_run_config
from analysis.job_table import job_for
from analysis.jobs import Cancelled, JobContext, JobError
from storage.errors import Conflict, StoreError
from storage.records import RunRecord
from storage.store import ResultStore

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 5.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def poll_store(
    stop: threading.Event, step: Callable[[], bool], idle: Callable[[], object], poll_s: float
) -> None:
    """Call ``step`` until ``stop`` is set, and ``idle`` after a step that did nothing. A store
    that cannot be reached or written (StoreError) is waited out with a doubling backoff of at
    most ``MAX_BACKOFF_S``: the loop of every worker and of the Ray dispatcher."""
    backoff_s = poll_s
    while not stop.is_set():
        try:
            busy = step()
        except StoreError as exc:
            log.warning("the store is unavailable (%s); retrying in %.1f s", exc, backoff_s)
            stop.wait(backoff_s)
            backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
            continue
        backoff_s = poll_s
        if not busy:
            idle()


class ModelCache:
    """Keeps the most recently used model resident between jobs (one at a time: models are big)."""

    def __init__(self) -> None:
        self._key: tuple[str, str, str, str | None] | None = None
        self._model: TransformerBridge | None = None
        self._lock = threading.Lock()
        self.loads = 0  # models loaded so far (the rest of the calls found theirs resident)

    def get(self, config: RunConfigBase) -> TransformerBridge:
        key = (config.model, config.device, config.dtype, config.device_map)
        with self._lock:
            if self._key != key:
                from analysis.models import load_model

                # free the old model before loading the next; a failed load leaves none
                self._model, self._key = None, None
                self._model = load_model(
                    config.model,
                    device=config.device,
                    dtype=config.dtype,
                    device_map=config.device_map,
                )
                self._key = key
                self.loads += 1
            assert self._model is not None  # loaded for ``key``, now or by an earlier call
            return self._model


@dataclass
class _Beat:
    """Progress shared between the job thread and the heartbeat thread."""

    progress: float = 0.0
    message: str = "starting"
    cancel_requested: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Worker:
    def __init__(
        self,
        store: ResultStore,
        *,
        worker_id: str | None = None,
        kinds: list[str] | None = None,
        heartbeat_s: float = 2.0,
        stale_after_s: float = 60.0,
        models: ModelCache | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id or default_worker_id()
        self.kinds = kinds
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.models = models or ModelCache()
        self._unrecorded: dict[int, tuple[bool, str]] = {}  # run id -> (cancelled, error)

    def run_forever(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Claim and run jobs until ``stop`` is set; store errors are waited out."""
        log.info("worker %s started", self.worker_id)
        recovered = False

        def step() -> bool:
            nonlocal recovered
            if not recovered:
                self.recover()
                recovered = True
            return self.reap_and_claim() is not None

        poll_store(stop, step, lambda: stop.wait(poll_s), poll_s)

    def recover(self) -> None:
        """Remove what runs that died left behind (see ``ResultStore.recover_after_crashes``)."""
        recovered = self.store.recover_after_crashes(self.stale_after_s)
        if recovered:
            log.info("removed what ended runs left behind: %s", recovered)

    def reap_and_claim(self) -> RunRecord | None:
        """Reap stale runs, then claim and execute one queued run (None if the queue is empty)."""
        self._record_unrecorded_ends()
        reaped = self.store.reap_stale(self.stale_after_s)
        for run_id in reaped:
            log.warning("run %s had a stale heartbeat and was marked FAILED", run_id)
        if reaped:
            self.recover()
        run = self.store.claim_next_run(self.worker_id, self.kinds)
        if run is None:
            return None
        return self.execute(run)

    def execute(self, run: RunRecord) -> RunRecord:
        """Run one claimed (RUNNING) run to a terminal state and return its final record."""
        beat = _Beat()
        stop_beat = threading.Event()
        beater = threading.Thread(
            target=self._heartbeat_loop, args=(run.id, beat, stop_beat), daemon=True
        )
        beater.start()
        try:
            self._run_job(run, beat)
        finally:
            stop_beat.set()
            beater.join()
        return self.store.get_run(run.id)

    def _run_job(self, run: RunRecord, beat: _Beat) -> None:
        try:
            config = parse_run_config(run.config)
            job = job_for(run.kind)
            workdir = self.store.work_dir(run.id)
            try:
                ctx = JobContext(
                    run_id=run.id,
                    config=config,
                    store=self.store,
                    workdir=workdir,
                    model_loader=self.models.get,
                    _on_progress=lambda f, m: self._report(beat, f, m),
                )
                output = job(ctx)
                self.store.finish_run(run.id, output)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        except Cancelled:
            self._end(run.id, cancelled=True)
        except (ConfigError, JobError) as exc:
            self._end(run.id, error=str(exc))
        except Conflict as exc:
            # Either the run ended meanwhile (reaped: fail_run is then refused and logged), or
            # its output names a prompt set / model that already exists: the run fails with why.
            log.warning("run %s could not be finished: %s", run.id, exc)
            self._end(run.id, error=str(exc))
        except StoreError as exc:
            self._end(run.id, error=f"storing the results failed: {exc}")
        except Exception as exc:  # noqa: BLE001 — any job failure must end the run, not the worker
            log.error("run %s failed:\n%s", run.id, traceback.format_exc())
            self._end(run.id, error=f"{type(exc).__name__}: {exc}")

    def _end(self, run_id: int, *, cancelled: bool = False, error: str = "") -> None:
        try:
            if cancelled:
                self.store.mark_cancelled(run_id)
            else:
                self.store.fail_run(run_id, error)
        except Conflict as exc:  # already reaped or cancelled elsewhere
            log.warning("run %s: %s", run_id, exc)
        except StoreError as exc:  # the store is down or full: retried at the next poll
            log.error("run %s could not be marked ended (%s); retrying", run_id, exc)
            self._unrecorded[run_id] = (cancelled, error)

    def _record_unrecorded_ends(self) -> None:
        """Record the end of runs the store could not take at the time (StoreError: retried)."""
        for run_id, (cancelled, error) in list(self._unrecorded.items()):
            del self._unrecorded[run_id]
            self._end(run_id, cancelled=cancelled, error=error)
            if run_id in self._unrecorded:
                raise StoreError(f"run {run_id}'s end is still not recorded")

    def _report(self, beat: _Beat, fraction: float, message: str) -> bool:
        with beat.lock:
            beat.progress, beat.message = fraction, message or beat.message
            return beat.cancel_requested

    def _heartbeat_loop(self, run_id: int, beat: _Beat, stop: threading.Event) -> None:
        while True:
            with beat.lock:
                progress, message = beat.progress, beat.message
            try:
                cancel = self.store.heartbeat(run_id, self.worker_id, progress, message)
            except StoreError as exc:
                log.warning("heartbeat for run %s failed: %s", run_id, exc)
                cancel = False
            with beat.lock:
                beat.cancel_requested = beat.cancel_requested or cancel
            if stop.wait(self.heartbeat_s):
                return
