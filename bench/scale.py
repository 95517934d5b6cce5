"""Scale-out on SQLite and PostgreSQL, measured side by side in one run.

1. **Runs/hour**: a queue of ``--runs`` small runs (``heads`` and ``dla`` in turn, on 8
   induction prompts of zoo:induction-2l) worked by 1 and by 2 real ``headlab worker``
   processes. ``runs/h`` counts from the first claim to the last finish (the workers' start
   and model load excluded); ``wall`` is from starting the workers to an empty queue.
   The same queue once more on the Ray executor: one dispatcher with 1 and 2 actors on its own
   local Ray cluster. **Model residency**: three runs in a row on zoo:code-6l on one worker or
   actor — the first loads the model, the second and third find it resident.
2. **Claim latency**: ``--claims`` runs enqueued, then claimed and finished (one head row each)
   as fast as possible by 1 and by 4 processes; p50/p99 of ``claim_next_run`` per call.

The PostgreSQL server is a throwaway one (``tests/pg_server.py``: Debian's ``postgresql``
package, ``fsync=off``), on the same 2-core machine as the workers. Prints a table and the
PostgreSQL/SQLite ratios.

Run: ``.venv/bin/python bench/scale.py [--runs 24 --claims 400]``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import migrate  # noqa: E402
from storage.records import HeadResultIn, PairIn, RunOutput, RunRecord  # noqa: E402
from storage.store import ResultStore  # noqa: E402
from tests.integration.cli import HEADLAB  # noqa: E402
from tests.pg_server import PostgresServer  # noqa: E402

MODEL = "zoo:induction-2l"
PROMPT_SET = "scale"
RESIDENT_MODEL = "zoo:code-6l"
CONFIG = {"kind": "throughput", "model": MODEL, "steps": 4, "batch": 2, "seq_len": 16}


@contextlib.contextmanager
def databases(scratch: Path) -> Iterator[dict[str, Callable[[], str]]]:
    """name -> a function giving a fresh, migrated database URL."""
    server = PostgresServer().start()
    counter = iter(range(1_000_000))

    def sqlite() -> str:
        return f"sqlite:///{scratch}/s{next(counter)}.db"

    def postgresql() -> str:
        return server.url(server.create_database())

    try:
        yield {"sqlite": sqlite, "postgresql": postgresql}
    finally:
        server.stop()


def _queue(store: ResultStore, pairs: list[PairIn], runs: int) -> list[int]:
    from app.launching import enqueue_config, make_config

    store.add_prompt_set(PROMPT_SET, pairs, "bench", MODEL)
    configs = [
        make_config("heads", MODEL, PROMPT_SET, {"max_prompts": 8}),
        make_config("dla", MODEL, PROMPT_SET, {"max_pairs": 8}),
    ]
    return [enqueue_config(store, configs[i % 2]).id for i in range(runs)]


def _worker_commands(executor: str, workers: int) -> list[list[str]]:
    if executor == "ray":  # one dispatcher, ``workers`` actors on its own local Ray cluster
        return [[*HEADLAB, "worker", "--executor", "ray", "--actors", str(workers)]]
    return [[*HEADLAB, "worker", "--heartbeat-s", "1"] for _ in range(workers)]


def _work(
    db_url: str, home: Path, enqueue: Callable[[ResultStore], list[int]], executor: str, n: int
) -> tuple[list[RunRecord], float]:
    """Queue runs with ``enqueue`` in a fresh store, work them with ``n`` workers (or actors)
    until all have ended; (their records, wall seconds from the workers' start)."""
    migrate.upgrade(db_url)
    env = {**os.environ, "HEADLAB_HOME": str(home), "HEADLAB_DB": db_url, "TORCH_NUM_THREADS": "1"}
    with ResultStore(db_url, home / "artifacts") as store:
        ids = enqueue(store)
        began = time.monotonic()
        procs = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for command in _worker_commands(executor, n)
        ]
        try:
            while any(not store.get_run(i).status.is_terminal for i in ids):
                time.sleep(0.2)
            wall = time.monotonic() - began
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=120)
        records = [store.get_run(i) for i in ids]
    unfinished = [r.error for r in records if r.status.value != "FINISHED"]
    assert not unfinished, f"{len(unfinished)} runs did not finish: {unfinished[:3]}"
    return records, wall


def runs_per_hour(
    db_url: str, home: Path, pairs: list[PairIn], runs: int, workers: int, executor: str
) -> dict[str, float]:
    records, wall = _work(db_url, home, lambda s: _queue(s, pairs, runs), executor, workers)
    first = min(r.started_at for r in records if r.started_at)
    last = max(r.finished_at for r in records if r.finished_at)
    busy = (last - first).total_seconds()
    return {"runs_per_h": runs / busy * 3600, "busy_s": busy, "wall_s": wall}


def residency(db_url: str, home: Path, executor: str) -> dict[str, float]:
    """Seconds of three ``throughput`` runs on zoo:code-6l in a row on one worker or actor: the
    first loads the model (6.8M parameters), the next find it resident."""
    config = {"kind": "throughput", "model": RESIDENT_MODEL, "steps": 2, "batch": 2, "seq_len": 16}

    def enqueue(store: ResultStore) -> list[int]:
        return [
            store.enqueue_run("throughput", config, RESIDENT_MODEL, None, {}, "bench").id
            for _ in range(3)
        ]

    records, _ = _work(db_url, home, enqueue, executor, 1)
    seconds = [
        (r.finished_at - r.started_at).total_seconds()
        for r in records
        if r.started_at and r.finished_at
    ]
    return {"first_s": seconds[0], "second_s": seconds[1], "third_s": seconds[2]}


def _claimer(db_url: str, artifacts: str, worker: str, start, out) -> None:
    store = ResultStore(db_url, artifacts)
    latencies = []
    start.wait()
    while True:
        t0 = time.perf_counter()
        run = store.claim_next_run(worker)
        latencies.append(time.perf_counter() - t0)
        if run is None:
            break
        store.finish_run(run.id, RunOutput(head_results=[HeadResultIn("m", 0, 0, 1.0)]))
    store.close()
    out.put(latencies[:-1])  # the last call found the queue empty


def claim_latency(db_url: str, artifacts: Path, claims: int, processes: int) -> dict[str, float]:
    migrate.upgrade(db_url)
    with ResultStore(db_url, artifacts) as store:
        for _ in range(claims):
            store.enqueue_run("throughput", CONFIG, MODEL, None, {}, "bench")
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(db_url, str(artifacts), f"c{i}", start, out))
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # let every process import and connect
    began = time.monotonic()
    start.set()
    latencies = [x for _ in procs for x in out.get(timeout=600)]
    elapsed = time.monotonic() - began
    for proc in procs:
        proc.join(timeout=60)
    assert len(latencies) == claims, f"{len(latencies)} of {claims} runs claimed"
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "claims_per_s": claims / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--claims", type=int, default=400)
    args = parser.parse_args()
    from analysis.models import load_model
    from analysis.prompts.generators import generate_pairs

    pairs = generate_pairs(load_model(MODEL), "induction", 8, 0)
    with tempfile.TemporaryDirectory(prefix="headlab-scale-") as tmp, databases(Path(tmp)) as dbs:
        scratch = Path(tmp)
        throughput: dict[tuple[str, str, int], dict[str, float]] = {}
        latency: dict[tuple[str, int], dict[str, float]] = {}
        resident: dict[tuple[str, str], dict[str, float]] = {}
        for name, fresh in dbs.items():
            for executor in ("local", "ray"):
                for workers in (1, 2):
                    home = scratch / f"home-{name}-{executor}-{workers}"
                    throughput[name, executor, workers] = runs_per_hour(
                        fresh(), home, pairs, args.runs, workers, executor
                    )
            for executor in ("local", "ray"):
                home = scratch / f"resident-{name}-{executor}"
                resident[name, executor] = residency(fresh(), home, executor)
            for processes in (1, 4):
                artifacts = scratch / f"claims-{name}-{processes}"
                latency[name, processes] = claim_latency(fresh(), artifacts, args.claims, processes)
    print(f"runs/hour: {args.runs} heads/dla runs on {MODEL}; local = N worker processes,")
    print("ray = one dispatcher with N actors on its own local Ray cluster")
    print(f"{'database':<11} {'executor':>8} {'N':>2} {'runs/h':>8} {'busy s':>7} {'wall s':>7}")
    for (name, executor, workers), r in throughput.items():
        cells = f"{r['runs_per_h']:>8.0f} {r['busy_s']:>7.1f} {r['wall_s']:>7.1f}"
        print(f"{name:<11} {executor:>8} {workers:>2} {cells}")
    print(f"\nmodel residency: three runs in a row on {RESIDENT_MODEL}, one worker / actor")
    print(f"{'database':<11} {'executor':>8} {'1st s':>7} {'2nd s':>7} {'3rd s':>7} {'2nd/1st':>8}")
    for (name, executor), r in resident.items():
        cells = f"{r['first_s']:>7.2f} {r['second_s']:>7.2f} {r['third_s']:>7.2f}"
        print(f"{name:<11} {executor:>8} {cells} {r['second_s'] / r['first_s']:>8.3f}")
    print(f"\nclaim latency: {args.claims} runs claimed and finished")
    print(f"{'database':<11} {'procs':>7} {'p50 ms':>8} {'p99 ms':>8} {'claims/s':>9}")
    for (name, procs), r in latency.items():
        cells = f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['claims_per_s']:>9.0f}"
        print(f"{name:<11} {procs:>7} {cells}")
    print("\nratios:")
    for executor in ("local", "ray"):
        for workers in (1, 2):
            pg = throughput["postgresql", executor, workers]["runs_per_h"]
            lite = throughput["sqlite", executor, workers]["runs_per_h"]
            print(f"  runs/h postgresql / sqlite, {executor} x{workers}: {pg / lite:.2f}")
    for name in dbs:
        for workers in (1, 2):
            ray_rate = throughput[name, "ray", workers]["runs_per_h"]
            local = throughput[name, "local", workers]["runs_per_h"]
            print(f"  runs/h ray / local, {name} x{workers}: {ray_rate / local:.2f}")
    for procs in (1, 4):
        ratio = latency["postgresql", procs]["p50_ms"] / latency["sqlite", procs]["p50_ms"]
        print(f"  claim p50 postgresql / sqlite, {procs} process(es): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
