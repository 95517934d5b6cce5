"""The Ray executor on a real local Ray cluster: actor processes, resident models, the store as
the one source of truth (results, cancel, a killed actor), and ``headlab serve --executor ray``
end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request

import pytest

from app import catalog
from app.sweeps import SweepSpec, enqueue_sweep
from storage.records import RunStatus
from tests.integration.cli import HEADLAB, headlab
from tests.integration.test_worker import wait_until

MODEL = "zoo:induction-2l"
OTHER = "zoo:greater-than-3l"


def _heads(store, prompt_set: str) -> int:
    from app.launching import enqueue_config, make_config

    return enqueue_config(store, make_config("heads", MODEL, prompt_set, {"max_prompts": 4})).id


def _throughput(store, model: str, steps: int) -> int:
    config = {"kind": "throughput", "model": model, "steps": steps, "batch": 2, "seq_len": 16}
    return store.enqueue_run("throughput", config, model, None, {}, "test").id


def _work_until(executor, store, run_ids, statuses=None, timeout_s: float = 180.0) -> None:
    """Step the executor until every run is terminal (or in ``statuses``)."""

    def done() -> bool:
        executor.step()
        runs = [store.get_run(i) for i in run_ids]
        return all((r.status in statuses) if statuses else r.status.is_terminal for r in runs)

    wait_until(done, timeout_s=timeout_s, every_s=0.1)


def _busy_slot(executor, run_id: int):
    return next(s for s in executor.slots if s.run_id == run_id)


@pytest.mark.slow
def test_ray_actors_keep_models_resident_and_the_store_stays_the_truth(store, headlab_env):
    import ray

    from analysis.ray_executor import RayExecutor

    catalog.generate_prompt_set(store, "induction", MODEL, 6, 0, "ind")
    executor = RayExecutor(store, actors=1, heartbeat_s=0.2, stale_after_s=30, num_cpus=2)
    executor.start()
    try:
        # three runs on one model, then one on another: two model loads, not four
        runs = [_heads(store, "ind") for _ in range(3)] + [_throughput(store, OTHER, 2)]
        _work_until(executor, store, runs)
        records = [store.get_run(i) for i in runs]
        assert [r.status for r in records] == [RunStatus.FINISHED] * 4, [r.error for r in records]
        assert all(r.worker_id.startswith(executor.id_prefix) for r in records)
        assert all(store.count_result_rows(i) > 0 for i in runs[:3])
        (slot,) = executor.slots
        assert ray.get(slot.actor.model_loads.remote()) == 2

        # a sweep's runs are plain queued runs: the executor works them like any other
        fixed = {"batch": 2, "seq_len": 16}
        spec = SweepSpec("throughput", [OTHER], fixed=fixed, vary={"steps": [2, 3]})
        sweep, children = enqueue_sweep(store, spec, "on-ray")
        _work_until(executor, store, [r.id for r in children])
        ended = [store.get_run(r.id) for r in children]
        assert store.get_sweep(sweep.id).counts == {"FINISHED": 2}, [r.error for r in ended]
        assert ray.get(slot.actor.model_loads.remote()) == 2  # the same model: still resident

        # a CUDA run on a cluster without GPUs fails at once, saying so
        config = {"kind": "throughput", "model": OTHER, "device": "cuda", "steps": 2}
        cuda = store.enqueue_run("throughput", config, OTHER, None, {}, "test").id
        _work_until(executor, store, [cuda], timeout_s=30)
        refused = store.get_run(cuda)
        assert refused.status is RunStatus.FAILED and "has no GPU" in (refused.error or "")
        split = {"kind": "throughput", "model": "hf:/models/big", "device_map": "auto"}
        split_id = store.enqueue_run("throughput", split, "hf:/models/big", None, {}, "test").id
        _work_until(executor, store, [split_id], timeout_s=30)
        assert "device_map run splits one model" in (store.get_run(split_id).error or "")

        # cancel through the store: the actor's heartbeat sees it and the run ends CANCELLED
        long_run = _throughput(store, OTHER, 1_000_000)
        _work_until(executor, store, [long_run], {RunStatus.RUNNING})
        wait_until(lambda: store.get_run(long_run).progress > 0, timeout_s=60)
        store.request_cancel(long_run)
        _work_until(executor, store, [long_run])
        assert store.get_run(long_run).status is RunStatus.CANCELLED
        assert ray.get(slot.actor.model_loads.remote()) == 2  # still resident

        # an actor killed mid-run: its run FAILED at once, nothing written; a new actor goes on
        doomed = _throughput(store, OTHER, 1_000_000)
        _work_until(executor, store, [doomed], {RunStatus.RUNNING})
        pid = ray.get(_busy_slot(executor, doomed).actor.pid.remote())
        os.kill(pid, signal.SIGKILL)
        _work_until(executor, store, [doomed], timeout_s=60)
        failed = store.get_run(doomed)
        assert failed.status is RunStatus.FAILED and "Ray actor running it died" in failed.error
        assert store.count_result_rows(doomed) == 0 and store.artifacts(doomed) == []
        after = _heads(store, "ind")
        _work_until(executor, store, [after])
        assert store.get_run(after).status is RunStatus.FINISHED
        assert ray.get(executor.slots[0].actor.pid.remote()) != pid
    finally:
        executor.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raylets() -> list[str]:
    found = subprocess.run(["pgrep", "-f", "raylet"], capture_output=True, text=True)
    return found.stdout.split()


@pytest.mark.slow
def test_serve_with_the_ray_executor_end_to_end(store, headlab_env):
    catalog.generate_prompt_set(store, "induction", MODEL, 6, 0, "ind")
    before = _raylets()
    port = _free_port()
    serve = subprocess.Popen(
        [*HEADLAB, "serve", "--port", str(port), "--executor", "ray", "--workers", "1"],
        env=headlab_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        queued = headlab(
            "run", "heads", "--model", MODEL, "--prompts", "ind", "--no-wait", env=headlab_env
        )
        run_id = int(queued.stdout.split()[1])
        wait_until(lambda: store.get_run(run_id).status.is_terminal, timeout_s=240)
        run = store.get_run(run_id)
        assert run.status is RunStatus.FINISHED, run.error
        assert "/ray" in (run.worker_id or "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/runs", timeout=30) as page:
            assert page.status == 200
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            raise
    # the dispatcher's local cluster went with it
    wait_until(lambda: set(_raylets()) <= set(before), timeout_s=30)
