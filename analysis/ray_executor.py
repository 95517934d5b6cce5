"""The Ray executor: queued runs executed by actors on a Ray cluster.

One dispatcher (``headlab worker --executor ray``, or the one ``headlab serve --executor ray``
starts) claims queued runs from the store — atomically, by id, exactly as a local worker claims
them — and hands each to a ``RunActor``: a Ray actor holding a ``Worker`` and its resident
``ModelCache``. A run goes to an idle actor that already holds its model when there is one, so
successive runs on one model skip the load. The store stays the one source of truth: the actor
heartbeats, reports progress, sees cancel requests and commits results in one transaction through
the store, as a local worker does, so the UI, ``runs`` commands, cancel and the reaper behave the
same. Runs that ask for a CUDA device (or ``auto`` on a cluster with GPUs) get actors with
``num_gpus=1``; a CUDA run on a cluster without GPUs fails at once, saying so.

Faults: an actor that dies mid-run (its process killed, its node lost) fails its run at once with
the reason, and a new actor takes its place; nothing of the run is written, because results are
only written in the final transaction. If the dispatcher dies, its actors die with it (they are
owned by it) and the reaper fails their runs when their heartbeats go stale. Without an address
the dispatcher starts a local Ray cluster of its own.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage.errors import Conflict
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

if TYPE_CHECKING:
    from ray.actor import ActorHandle

log = logging.getLogger(__name__)
FORWARDED_ENV = ("HEADLAB_HOME", "HEADLAB_DB", "HEADLAB_STALE_AFTER_S", "TORCH_NUM_THREADS")
ACTOR_START_S = 120.0
DEVICE_MAP_REFUSED = (
    "a device_map run splits one model over every GPU of a machine, and a Ray actor holds "
    "one GPU; run it on that machine with `headlab run … --device-map` or a local worker"
)


class RunActor:
    """Runs claimed runs in its own process; keeps the last model loaded (``Worker``)."""

    def __init__(
        self,
        db_url: str,
        artifacts_dir: str,
        worker_id: str,
        env: dict[str, str],
        heartbeat_s: float,
        stale_after_s: float,
    ) -> None:
        os.environ.update(env)
        from analysis.worker import Worker

        self.store = ResultStore(db_url, artifacts_dir)
        self.worker = Worker(
            self.store, worker_id=worker_id, heartbeat_s=heartbeat_s, stale_after_s=stale_after_s
        )

    def pid(self) -> int:
        return os.getpid()

    def model_loads(self) -> int:
        """How many models this actor has loaded (runs on a resident model load none)."""
        return self.worker.models.loads

    def execute(self, run_id: int) -> str:
        """Run a run this actor's worker id has claimed; its final status."""
        return self.worker.execute(self.store.get_run(run_id)).status.value


@dataclass
class _Slot:
    actor: ActorHandle
    worker_id: str
    gpu: bool
    model_key: tuple[str, str, str] | None = None
    run_id: int | None = None
    future: Any = None


def _model_key(run: RunRecord) -> tuple[str, str, str]:
    config = run.config
    return (str(config.get("model")), str(config.get("device", "cpu")), str(config.get("dtype")))


class RayExecutor:
    """Claims runs from ``store`` and runs them on at most ``actors`` Ray actors at a time."""

    def __init__(
        self,
        store: ResultStore,
        *,
        address: str | None = None,
        actors: int = 1,
        kinds: list[str] | None = None,
        heartbeat_s: float = 2.0,
        stale_after_s: float = 60.0,
        num_cpus: int | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.store = store
        self.address = address
        self.max_actors = max(1, actors)
        self.kinds = kinds
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.num_cpus = num_cpus
        self.poll_s = poll_s
        self.id_prefix = f"{socket.gethostname()}:{os.getpid()}/ray"
        self.slots: list[_Slot] = []
        self._made = 0
        self._actor_class: Any = None

    # -- cluster and actors ------------------------------------------------------------------

    def start(self) -> None:
        import ray

        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
            }
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.num_cpus, **options)
        self._actor_class = ray.remote(RunActor)
        for _ in range(self.max_actors):
            if self._new_slot(gpu=False) is None:
                break
        if not self.slots:
            raise RuntimeError(
                f"no Ray actor could start within {ACTOR_START_S:.0f} s; the cluster has "
                f"{ray.cluster_resources()} — give it a CPU per actor"
            )
        log.info("ray executor: %s, up to %s actor(s)", self.address or "local", self.max_actors)

    def shutdown(self) -> None:
        import ray

        for slot in self.slots:
            ray.kill(slot.actor)
        self.slots = []
        if not self.address:
            ray.shutdown()

    def _new_slot(self, gpu: bool) -> _Slot | None:
        """A new actor, up and ready before any run is claimed for it (None: the cluster has no
        room for it within ``ACTOR_START_S``)."""
        import ray
        from ray.exceptions import GetTimeoutError

        self._made += 1
        worker_id = f"{self.id_prefix}{self._made}"
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        # max_concurrency 2: pid() and model_loads() answer while execute() runs
        options = {"num_gpus": 1 if gpu else 0, "num_cpus": 1, "max_concurrency": 2}
        actor = self._actor_class.options(**options).remote(
            self.store.db_url,
            str(self.store.files.root),
            worker_id,
            env,
            self.heartbeat_s,
            self.stale_after_s,
        )
        try:
            ray.get(actor.pid.remote(), timeout=ACTOR_START_S)
        except GetTimeoutError:
            log.warning("a Ray actor (num_gpus=%s) did not start: no room in the cluster", int(gpu))
            ray.kill(actor)
            return None
        slot = _Slot(actor, worker_id, gpu)
        self.slots.append(slot)
        return slot

    def _slot_for(self, run: RunRecord, gpu: bool) -> _Slot | None:
        """An idle actor for ``run``: one holding its model, else a new one, else any idle one."""
        import ray

        idle = [s for s in self.slots if s.run_id is None]
        for slot in idle:
            if slot.gpu == gpu and slot.model_key == _model_key(run):
                return slot
        if len(self.slots) < self.max_actors:
            return self._new_slot(gpu)
        same_kind = [s for s in idle if s.gpu == gpu]
        if same_kind:
            return same_kind[0]
        if idle:  # the pool is full of the other kind: replace an idle one
            ray.kill(idle[0].actor)
            self.slots.remove(idle[0])
            return self._new_slot(gpu)
        return None

    # -- the loop ---------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event) -> None:
        """Dispatch until ``stop`` is set, then wait for the runs in flight; store errors are
        waited out."""
        from analysis.worker import poll_store

        self.start()
        try:
            poll_store(stop, self.step, lambda: self._idle(stop), self.poll_s)
            while any(s.run_id is not None for s in self.slots):
                self.collect(timeout_s=1.0)
        finally:
            self.shutdown()

    def _idle(self, stop: threading.Event) -> None:
        if any(slot.future is not None for slot in self.slots):
            self.collect(timeout_s=self.poll_s)  # returns as soon as a run ends
        else:
            stop.wait(self.poll_s)

    def step(self) -> bool:
        """Collect ended runs, reap stale ones, dispatch what fits; whether anything happened."""
        ended = self.collect(timeout_s=0)
        reaped = self.store.reap_stale(self.stale_after_s)
        if reaped:
            log.warning("runs %s had stale heartbeats and were marked FAILED", reaped)
            self.store.recover_after_crashes(self.stale_after_s)
        return bool(ended or reaped or self.dispatch())

    def dispatch(self) -> int:
        """Claim queued runs (oldest first) while an actor is free; how many were handed over."""
        handed = 0
        if all(s.run_id is not None for s in self.slots) and len(self.slots) >= self.max_actors:
            return 0
        limit = self.max_actors * 4
        kinds: list[str | None] = [*self.kinds] if self.kinds else [None]
        queued = [
            run
            for kind in kinds
            for run in self.store.list_runs(
                kind=kind, status=RunStatus.QUEUED, limit=limit, oldest_first=True
            )
        ]
        has_gpu = self._cluster_has_gpu()
        for run in sorted(queued, key=lambda r: r.id):
            if run.config.get("device_map"):
                self._fail_unclaimed(run, DEVICE_MAP_REFUSED)
                continue
            device = str(run.config.get("device", "cpu"))
            gpu = device.startswith("cuda") or (device == "auto" and has_gpu)
            if gpu and not has_gpu:
                self._fail_unclaimed(
                    run, "it asks for a CUDA device and the Ray cluster has no GPU"
                )
                continue
            slot = self._slot_for(run, gpu)
            if slot is None:
                break
            try:
                self.store.claim_run(run.id, slot.worker_id)
            except Conflict:  # another worker claimed it first
                continue
            slot.run_id, slot.model_key = run.id, _model_key(run)
            slot.future = slot.actor.execute.remote(run.id)
            handed += 1
        return handed

    def collect(self, timeout_s: float) -> int:
        """Take the results of finished actor calls, waiting up to ``timeout_s`` for the first;
        fail the runs of actors that died."""
        import ray
        from ray.exceptions import RayActorError

        busy = [s for s in self.slots if s.future is not None]
        if not busy:
            return 0
        futures = [s.future for s in busy]
        ray.wait(futures, num_returns=1, timeout=timeout_s)
        ready, _ = ray.wait(futures, num_returns=len(futures), timeout=0)
        ended = 0
        for slot in [s for s in busy if s.future in ready]:
            run_id = slot.run_id
            assert run_id is not None
            try:
                status = ray.get(slot.future)
                log.info("run %s ended %s on %s", run_id, status, slot.worker_id)
            except RayActorError as exc:
                self.slots.remove(slot)
                self._fail_claimed(run_id, f"the Ray actor running it died ({type(exc).__name__})")
            except Exception as exc:  # noqa: BLE001 — the actor's own store call failed
                self._fail_claimed(run_id, f"the Ray actor failed: {type(exc).__name__}: {exc}")
            slot.run_id, slot.future = None, None
            ended += 1
        return ended

    def _fail_claimed(self, run_id: int, reason: str) -> None:
        try:
            if self.store.get_run(run_id).status is RunStatus.RUNNING:
                self.store.fail_run(run_id, reason)
                log.warning("run %s: %s", run_id, reason)
        except Conflict:  # it ended meanwhile
            pass

    def _fail_unclaimed(self, run: RunRecord, reason: str) -> None:
        worker_id = f"{self.id_prefix}-dispatcher"
        try:
            self.store.claim_run(run.id, worker_id)
            self.store.fail_run(run.id, f"run {run.id} cannot run on Ray: {reason}")
        except Conflict:
            pass

    def _cluster_has_gpu(self) -> bool:
        import ray

        return float(ray.cluster_resources().get("GPU", 0)) >= 1
