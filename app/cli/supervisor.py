"""Worker processes started by ``headlab serve``: started, watched, restarted, stopped.

When a worker process dies (killed, out of memory), the run it held is marked FAILED at once
with the reason, instead of waiting for its heartbeat to go stale, and a new worker is started.
Under ``--executor ray`` the one process is the Ray dispatcher; the runs of its actors (worker
ids ``<host>:<pid>/ray<n>``) are failed with it.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

from storage.errors import StoreError
from storage.records import RunStatus
from storage.store import ResultStore

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    process: subprocess.Popen[bytes]


def worker_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", "worker", *options]


class WorkerSupervisor:
    def __init__(
        self,
        store: ResultStore,
        count: int,
        poll_s: float = 1.0,
        worker_options: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.count = count
        self.poll_s = poll_s
        self.worker_options = worker_options
        self._slots: list[_Slot] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="supervisor")

    def start(self) -> None:
        self._slots = [_Slot(self._spawn()) for _ in range(self.count)]
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for slot in self._slots:
            slot.process.terminate()
        for slot in self._slots:
            try:
                slot.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                slot.process.kill()

    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self._slots]

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(worker_command(*self.worker_options))
        log.info("started worker pid %s", process.pid)
        return process

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            for slot in self._slots:
                code = slot.process.poll()
                if code is None or self._stop.is_set():
                    continue
                self.fail_runs_of(slot.process.pid, code)
                slot.process = self._spawn()

    def fail_runs_of(self, pid: int, exit_code: int) -> None:
        worker_id = f"{socket.gethostname()}:{pid}"
        reason = f"worker process {pid} died (exit code {exit_code}) while running this run"
        try:
            for run in self.store.list_runs(status=RunStatus.RUNNING, limit=10_000):
                if run.worker_id == worker_id or (run.worker_id or "").startswith(worker_id + "/"):
                    self.store.fail_run(run.id, reason)
                    log.warning("run %s: %s", run.id, reason)
        except StoreError as exc:
            log.error("could not mark the runs of worker %s failed: %s", pid, exc)
