"""Fault soak: a queue of real runs worked by real worker processes that are SIGKILLed at random
points while the data directory's disk fills up and frees again; afterwards the store must hold
no lost or half-written run and pass its integrity check.

Used by ``tests/integration/test_soak.py`` (a short soak in ``make test``) and ``bench/soak.py``
(a long one, with its figures printed). Faults:

- SIGKILL of a random worker (one holding a run when there is one) every ``kill_every_s``
  (±50 %), ``kills`` times, each restarted at once (the soak lasts until all were done);
- optionally the disk full: the data directory is a tmpfs, filled to the last byte for
  ``disk_full_s`` once a third of the runs have ended, then freed (needs root to mount);
- on PostgreSQL (``db_url``), every client connection to the database dropped by the server
  (``drop_connections``, e.g. ``pg_terminate_backend``) every ``drop_every_s`` (±50 %).

Afterwards: every run is terminal; no result rows or artifacts on a run that did not finish;
every finished run's rows and artifacts present and verified; no orphaned stored files, pending
lists, temp files or work folders; ``headlab db check`` passes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from storage.errors import StoreError
from storage.records import RunStatus
from storage.store import ResultStore
from tests.integration.cli import HEADLAB

MODEL = "zoo:induction-2l"
PROMPT_SET = "soak"


@dataclass
class SoakReport:
    runs: int
    workers: int
    kills: int = 0
    kills_mid_run: int = 0
    killed_runs: list[int] = field(default_factory=list)
    disk_full: str = "not tried"
    disk_full_failures: int = 0
    database: str = "sqlite"
    connection_drops: int = 0
    connections_dropped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    killed_runs_failed: int = 0
    lost: int = 0
    half_written: int = 0
    orphans: int = 0
    leftovers: list[str] = field(default_factory=list)
    db_check_ok: bool = False
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass
class _Fleet:
    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: int = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.logs / f"worker{self.started}.log").open("wb")
        return subprocess.Popen(
            [*HEADLAB, "worker", "--heartbeat-s", "0.2"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start(self, count: int) -> None:
        self.processes = [self.spawn() for _ in range(count)]

    def kill_one(self, rng: random.Random, store: ResultStore) -> list[int]:
        """SIGKILL a random worker — one holding a run when there is one — and start another
        in its place; the runs it held."""
        try:
            running = store.list_runs(status=RunStatus.RUNNING, limit=10_000)
        except StoreError:  # the disk is full right now: any worker
            running = []
        held = {run.worker_id: run.id for run in running}
        busy = [i for i, p in enumerate(self.processes) if _worker_id(p.pid) in held]
        index = rng.choice(busy) if busy else rng.randrange(len(self.processes))
        victim = self.processes[index]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        self.processes[index] = self.spawn()
        try:
            running = store.list_runs(status=RunStatus.RUNNING, limit=10_000)
        except StoreError:
            return []
        return [run.id for run in running if run.worker_id == _worker_id(victim.pid)]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _worker_id(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


@contextlib.contextmanager
def tmpfs(mount_point: Path, size_mb: int) -> Iterator[bool]:
    """Mount a tmpfs at ``mount_point`` (True) or leave it a plain folder (False: not root)."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    try:
        yield mounted.returncode == 0
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_disk(folder: Path) -> Path:
    """Write one file until the filesystem has no byte left (ENOSPC); the file."""
    filler = folder / "filler.bin"
    block = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        with contextlib.suppress(OSError):  # the last partial block
            while True:
                out.write(b"\0" * 4096)
    return filler


def _enqueue_runs(home_env: dict[str, str], runs: int, rng: random.Random) -> list[int]:
    from app.launching import enqueue_config, make_config
    from storage.settings import load_settings

    with ResultStore.from_settings(load_settings(home_env)) as store:
        ids = []
        for i in range(runs):
            choice = i % 3
            if choice == 0:
                config = make_config("heads", MODEL, PROMPT_SET, {"max_prompts": 8})
            elif choice == 1:
                config = make_config("dla", MODEL, PROMPT_SET, {"max_pairs": 8})
            else:
                steps = rng.choice([2, 20, 200])
                options = {"steps": steps, "batch": 2, "seq_len": 16}
                config = make_config("throughput", MODEL, None, options)
            ids.append(enqueue_config(store, config).id)
        return ids


def soak(
    home: Path,
    logs: Path,
    *,
    runs: int = 60,
    workers: int = 2,
    kills: int = 20,
    kill_every_s: float = 4.0,
    disk_full_s: float = 4.0,
    stale_after_s: float = 5.0,
    seed: int = 0,
    timeout_s: float = 900.0,
    db_url: str | None = None,
    drop_connections: Callable[[], int] | None = None,
    drop_every_s: float = 3.0,
) -> SoakReport:
    """Run the soak in a fresh data directory ``home`` (a tmpfs when it can be mounted), on
    SQLite there or on the empty database ``db_url``."""
    from storage import migrate
    from storage.settings import load_settings

    rng = random.Random(seed)
    report = SoakReport(runs=runs, workers=workers)
    began = time.monotonic()
    env = dict(os.environ)
    env.update(
        HEADLAB_HOME=str(home),
        HEADLAB_STALE_AFTER_S=str(stale_after_s),
        PYTHONUNBUFFERED="1",
        TORCH_NUM_THREADS="1",
    )
    env.pop("HEADLAB_DB", None)
    if db_url is not None:
        env["HEADLAB_DB"] = db_url
        report.database = db_url.split(":", 1)[0].split("+", 1)[0]
    logs.mkdir(parents=True, exist_ok=True)
    with tmpfs(home, size_mb=256) as on_tmpfs:
        settings = load_settings(env)
        migrate.upgrade(settings.db_url)
        generated = subprocess.run(
            [*HEADLAB, "prompts", "generate", "induction", "--model", MODEL, "--n", "8",
             "--name", PROMPT_SET],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if generated.returncode != 0:
            raise RuntimeError(f"generating the prompt set failed: {generated.stderr}")
        ids = _enqueue_runs(env, runs, rng)
        store = ResultStore.from_settings(settings)
        fleet = _Fleet(env, logs)
        fleet.start(workers)
        report.disk_full = "pending" if on_tmpfs else "skipped: mounting a tmpfs needs root"
        filled_at: float | None = None
        filler: Path | None = None
        next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every_s
        next_drop = time.monotonic() + rng.uniform(0.5, 1.5) * drop_every_s
        try:
            while True:
                now = time.monotonic()
                if now - began > timeout_s:
                    report.problems.append(f"the queue did not drain within {timeout_s:.0f} s")
                    break
                with contextlib.suppress(Exception):  # the store may be full right now
                    ended = sum(store.count_runs(status=s) for s in _TERMINAL)
                    if ended == runs and filler is None and report.kills >= kills:
                        break
                    if report.disk_full == "pending" and ended >= runs // 3:
                        filler, filled_at = fill_disk(home), now
                        report.disk_full = "filled"
                if filler is not None and filled_at is not None and now - filled_at > disk_full_s:
                    filler.unlink()
                    filler = None
                    report.disk_full = f"full for {disk_full_s:.0f} s, then freed"
                if report.kills < kills and now >= next_kill:
                    report.kills += 1
                    held = fleet.kill_one(rng, store)
                    report.kills_mid_run += bool(held)
                    report.killed_runs += held
                    next_kill = now + rng.uniform(0.5, 1.5) * kill_every_s
                if drop_connections is not None and now >= next_drop:
                    report.connection_drops += 1
                    report.connections_dropped += drop_connections()
                    next_drop = now + rng.uniform(0.5, 1.5) * drop_every_s
                time.sleep(0.1)
        finally:
            fleet.stop()
            if filler is not None:
                filler.unlink()
        _audit(store, ids, report, env)
        store.close()
    report.wall_s = round(time.monotonic() - began, 1)
    return report


_TERMINAL = ("FINISHED", "FAILED", "CANCELLED")


def _audit(store: ResultStore, ids: list[int], report: SoakReport, env: dict[str, str]) -> None:
    statuses: Counter[str] = Counter()
    for run_id in ids:
        run = store.get_run(run_id)
        statuses[run.status.value] += 1
        rows = store.count_result_rows(run_id)
        artifacts = store.artifacts(run_id)
        if not run.status.is_terminal:
            report.lost += 1
            report.problems.append(f"run {run_id} is still {run.status.value}")
        elif run.status is not RunStatus.FINISHED:
            if rows or artifacts:
                report.half_written += 1
                report.problems.append(f"run {run_id} is {run.status.value} with results")
            error = run.error or ""
            if "heartbeats" in error or "died" in error:
                report.killed_runs_failed += 1
            if "No space left" in error or "disk is full" in error:
                report.disk_full_failures += 1
            if run_id in report.killed_runs and "heartbeats" not in error:
                report.problems.append(f"killed run {run_id} failed with {error!r}")
        else:
            expects_rows = run.kind != "throughput"
            if (expects_rows and rows == 0) or (run.kind == "heads" and not artifacts):
                report.half_written += 1
                report.problems.append(f"run {run_id} FINISHED without its results")
            for artifact in artifacts:
                try:
                    store.verify_artifact(artifact)
                except StoreError as exc:
                    report.problems.append(str(exc))
    report.statuses = dict(statuses)
    for run_id in report.killed_runs:
        if store.get_run(run_id).status is not RunStatus.FAILED:
            report.problems.append(f"run {run_id} was killed but is not FAILED")
    _, problems, orphans = store.check_artifacts()
    report.problems += problems
    report.orphans = len(orphans)
    root = store.files.root
    pending = [f"pending list of run {r}" for r in store.pending.runs()]
    temps = [f".tmp/{p.name}" for p in (root / ".tmp").glob("*")]
    work = [f"work/{p.name}" for p in store.work_root.glob("*")] if store.work_root.is_dir() else []
    report.leftovers = pending + temps + work
    checked = subprocess.run(
        [*HEADLAB, "db", "check"], env=env, capture_output=True, text=True, timeout=300
    )
    report.db_check_ok = checked.returncode == 0
    if not report.db_check_ok:
        report.problems.append(f"headlab db check: {checked.stderr.strip()}")
