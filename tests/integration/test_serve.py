"""`headlab serve`: web app and local worker processes together, and its refusal rules."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.browser.server import free_port, stop, wait_http
from tests.integration.cli import HEADLAB, headlab, headlab_json


def test_serve_on_all_interfaces_without_auth_is_refused(store, headlab_env):
    result = headlab("serve", "--host", "0.0.0.0", "--workers", "0", env=headlab_env, check=False)
    assert result.returncode == 1
    assert "HEADLAB_AUTH_TOKEN" in result.stderr


def test_serve_on_a_busy_port_names_the_port(store, headlab_env):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = headlab("serve", "--port", str(port), "--workers", "0", env=headlab_env,
                         check=False)  # fmt: skip
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_unmigrated_database(headlab_env):
    result = headlab("serve", "--workers", "0", env=headlab_env, check=False)
    assert result.returncode == 4
    assert "headlab db upgrade" in result.stderr


def test_serve_runs_queued_work_with_its_own_worker(store, headlab_env, tmp_path):
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*HEADLAB, "serve", "--port", str(port), "--workers", "1"],
        env=headlab_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", server, timeout_s=120)
        queued = headlab_json(
            "run", "throughput", "--model", "zoo:induction-2l", "--steps", "1", "--no-wait",
            env=headlab_env,
        )  # fmt: skip
        assert queued["status"] == "QUEUED"
        deadline = time.monotonic() + 180
        while store.get_run(queued["id"]).status.value != "FINISHED":
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/runs", timeout=10) as response:
            assert response.status == 200
        layout = f"http://127.0.0.1:{port}/_dash-layout"
        with urllib.request.urlopen(layout, timeout=10) as response:
            json.loads(response.read())
        workers = child_pids(server.pid)
        assert len(workers) == 1
    finally:
        stop(server)
        log.close()
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "workers outlived serve"


def child_pids(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children
