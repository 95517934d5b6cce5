"""The worker as real processes over a real store: runs, cancel, SIGKILL, reaping. The lifecycle
tests run twice, on a SQLite file and on a database of a real PostgreSQL server (``BOTH``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app.services.runs import run_row
from storage.records import ArtifactIn, HeadResultIn, RunOutput, RunStatus
from tests.integration.cli import HEADLAB, headlab, headlab_json

MODEL = "zoo:induction-2l"
BOTH = pytest.mark.parametrize("headlab_env", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def headlab_env(request, headlab_env, monkeypatch):
    """The shared environment, on PostgreSQL where a test is parametrized so (``BOTH``)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
        monkeypatch.setenv("HEADLAB_DB", url)
        headlab_env["HEADLAB_DB"] = url
    return headlab_env


def throughput_config(steps: int) -> dict:
    return {"kind": "throughput", "model": MODEL, "steps": steps, "batch": 2, "seq_len": 16}


def enqueue(store, steps: int) -> int:
    config = throughput_config(steps)
    return store.enqueue_run("throughput", config, MODEL, None, {}, "test").id


def finished_run_with_results(store) -> int:
    """An earlier run with stored results, which no later fault may touch."""
    run_id = enqueue(store, 1)
    store.claim_run(run_id, "earlier-worker")
    rows = [
        HeadResultIn("score", layer, head, float(layer + head))
        for layer in range(2)
        for head in range(4)
    ]
    store.finish_run(run_id, RunOutput(head_results=rows, summary={"note": "kept"}))
    return run_id


def start_worker(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HEADLAB, "worker", "--heartbeat-s", "0.2", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate, timeout_s: float = 120.0, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


def test_inline_run_via_cli_finishes_with_summary(store, headlab_env):
    out = headlab_json(
        "run", "throughput", "--model", MODEL, "--steps", "2", "--seq-len", "8", env=headlab_env
    )
    assert out["status"] == "FINISHED"
    assert out["summary"]["tokens_per_s"] > 0
    assert out["versions"]["torch"].startswith("2.13")
    assert store.get_run(out["id"]).status is RunStatus.FINISHED


@BOTH
def test_worker_sigkill_mid_run_fails_it_and_keeps_earlier_results(store, headlab_env):
    kept = finished_run_with_results(store)
    victim = enqueue(store, 1_000_000)
    worker = start_worker(headlab_env)
    try:
        wait_until(lambda: store.get_run(victim).progress > 0)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
    assert store.get_run(victim).status is RunStatus.RUNNING  # nobody has reaped it yet
    reaper_env = dict(headlab_env, HEADLAB_STALE_AFTER_S="1")
    time.sleep(1.5)
    # with no worker alive, `runs list/show` and the Runs page already say it is stale
    listed = headlab_json("runs", "list", env=reaper_env)["runs"]
    assert next(r for r in listed if r["id"] == victim)["stale_s"] > 1
    wide = dict(reaper_env, COLUMNS="200")  # the table's width, so no cell wraps
    assert "stale: no heartbeat for" in headlab("runs", "list", env=wide).stdout
    shown = headlab("runs", "show", str(victim), env=wide).stdout
    assert "RUNNING (stale: no heartbeat for" in shown
    row = run_row(store.get_run(victim), {}, stale_after_s=1.0)
    assert row["status"] == "RUNNING" and row["stale"].startswith("no heartbeat")
    assert run_row(store.get_run(kept), {}, stale_after_s=1.0)["stale"] == ""
    headlab("worker", "--once", env=reaper_env)  # any worker reaps stale runs on its poll
    dead = store.get_run(victim)
    assert dead.status is RunStatus.FAILED
    assert "heartbeat" in dead.error
    assert store.head_results(victim).empty
    assert len(store.head_results(kept)) == 8
    assert store.get_run(kept).summary == {"note": "kept"}


@BOTH
def test_supervisor_fails_run_of_dead_worker_at_once_and_restarts(store, headlab_env):
    from app.cli.supervisor import WorkerSupervisor

    victim = enqueue(store, 1_000_000)
    supervisor = WorkerSupervisor(store, count=1, poll_s=0.2)
    supervisor.start()
    try:
        wait_until(lambda: store.get_run(victim).status is RunStatus.RUNNING)
        (pid,) = supervisor.pids()
        os.kill(pid, signal.SIGKILL)
        failed = wait_until(
            lambda: (r := store.get_run(victim)).status is RunStatus.FAILED and r, timeout_s=30
        )
        assert f"worker process {pid} died" in failed.error
        wait_until(lambda: supervisor.pids() != [pid], timeout_s=30)
        follow_up = enqueue(store, 1)
        wait_until(lambda: store.get_run(follow_up).status is RunStatus.FINISHED)
    finally:
        supervisor.stop()


@BOTH
def test_cancel_running_run_then_cancel_finished_run_is_refused(store, headlab_env):
    victim = enqueue(store, 1_000_000)
    worker = start_worker(headlab_env)
    try:
        wait_until(lambda: store.get_run(victim).progress > 0)
        out = headlab_json("runs", "cancel", str(victim), env=headlab_env)
        assert out["id"] == victim
        wait_until(lambda: store.get_run(victim).status is RunStatus.CANCELLED, timeout_s=30)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    again = headlab("runs", "cancel", str(victim), env=headlab_env, check=False)
    assert again.returncode == 3
    assert "already CANCELLED" in again.stderr


@BOTH
def test_cancel_queued_run_never_starts(store, headlab_env):
    run_id = enqueue(store, 1)
    headlab("runs", "cancel", str(run_id), env=headlab_env)
    headlab("worker", "--once", env=headlab_env)
    run = store.get_run(run_id)
    assert run.status is RunStatus.CANCELLED and run.started_at is None


@BOTH
def test_three_workers_share_a_queue_without_duplicates(store, headlab_env):
    ids = [enqueue(store, 1) for _ in range(9)]
    workers = [start_worker(headlab_env) for _ in range(3)]
    try:
        wait_until(lambda: all(store.get_run(i).status.is_terminal for i in ids), timeout_s=240)
    finally:
        for w in workers:
            w.terminate()
        errors = [w.communicate(timeout=30)[1] for w in workers]
    runs = [store.get_run(i) for i in ids]
    assert all(r.status is RunStatus.FINISHED for r in runs), [r.error for r in runs]
    assert not any("database is locked" in e for e in errors)
    assert len({r.worker_id for r in runs}) >= 1


def test_bad_config_fails_run_with_message_not_worker(store, headlab_env):
    bad = store.enqueue_run(
        "throughput", {**throughput_config(1), "seq_len": 100_000}, MODEL, None, {}, "test"
    ).id
    good = enqueue(store, 1)
    headlab("worker", "--once", env=headlab_env)
    headlab("worker", "--once", env=headlab_env)
    assert "seq_len" in store.get_run(bad).error
    assert store.get_run(good).status is RunStatus.FINISHED


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("runs", "show", "999"), 1, "run 999 does not exist"),
        (("runs", "cancel", "999"), 1, "run 999 does not exist"),
        (("runs", "list", "--status", "bogus"), 1, "unknown status"),
        (("run", "throughput", "--model", MODEL, "--steps", "0"), 1, "steps"),
        (("run", "throughput", "--model", MODEL, "--prompts", "nope"), 1, "nope"),
    ],
)
def test_cli_errors_are_clear(store, headlab_env, args, code, needle):
    result = headlab(*args, env=headlab_env, check=False)
    assert result.returncode == code, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_db_url_is_named(headlab_env):
    env = dict(headlab_env, HEADLAB_DB="not a url")
    result = headlab("runs", "list", env=env, check=False)
    assert result.returncode != 0
    assert "HEADLAB_DB" in result.stderr and "Traceback" not in result.stderr


def test_unmigrated_database_names_upgrade_command(headlab_env):
    result = headlab("runs", "list", env=headlab_env, check=False)
    assert result.returncode == 4
    assert "headlab db upgrade" in result.stderr


def test_runs_list_json_is_one_object(store, headlab_env):
    finished_run_with_results(store)
    out = headlab_json("runs", "list", env=headlab_env)
    assert [r["status"] for r in out["runs"]] == ["FINISHED"]


def test_db_upgrade_is_idempotent(headlab_env, tmp_path: Path):
    first = headlab_json("db", "upgrade", env=headlab_env)
    second = headlab_json("db", "upgrade", env=headlab_env)
    assert first["to"] == second["to"] == second["from"]
    assert headlab_json("db", "check", env=headlab_env)["ok"] is True


@BOTH
def test_db_check_verifies_artifacts_and_reports_orphans(store, headlab_env, tmp_path):
    run_id = enqueue(store, 1)
    store.claim_run(run_id, "w")
    (tmp_path / "grid.json").write_text('{"cells": [1, 2, 3]}')
    artifact = ArtifactIn("grid.json", "file", str(tmp_path / "grid.json"))
    store.finish_run(run_id, RunOutput(artifacts=[artifact], summary={}))
    report = headlab_json("db", "check", env=headlab_env)
    assert report["ok"] is True and report["artifacts_checked"] == 1 and report["orphans"] == []
    orphan = store.files.put(tmp_path / "grid.json", "x.bin")  # a crash before the rows landed
    orphan_path = store.files.path(orphan.relpath)
    assert headlab_json("db", "check", env=headlab_env)["orphans"] == [orphan.relpath]
    stored = Path(store.get_artifact(run_id, "grid.json").path)
    stored.unlink()
    stored.write_text('{"cells": [1, 2, 4]}')  # altered, same size
    result = headlab("db", "check", "--remove-orphans", env=headlab_env, check=False)
    assert result.returncode == 1
    assert "problem: run" in result.stderr and "'grid.json' is corrupt" in result.stderr
    assert "Traceback" not in result.stderr and not orphan_path.exists()
