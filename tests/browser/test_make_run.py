"""`make run` on a fresh data directory: installs, prepares the demo, serves the workbench.

The README promises exactly this; the test runs the real Makefile target, waits for the server,
and checks in headless Chromium that the Runs page lists the finished demo runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.browser.server import free_port, wait_http, wait_until

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_make_run_serves_runs_page_with_demo(tmp_path: Path, browser) -> None:
    port = free_port()
    env = dict(os.environ, HEADLAB_HOME=str(tmp_path / "home"), PORT=str(port))
    env.pop("HEADLAB_DB", None)
    env.pop("MAKEFLAGS", None)
    log = (tmp_path / "make-run.log").open("w")
    process = subprocess.Popen(
        ["make", "-s", "run"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/", process, timeout_s=600)
        page = browser.new_page()  # the session's headless Chromium (tests/browser/conftest.py)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/runs")
        # `text=FINISHED` would also match the status filter ("finished") before the runs
        # table arrives: wait for the table's own content instead.
        wait_until(
            page,
            "document.body.innerText.includes('zoo:code-6l')"
            " && document.body.innerText.includes('FINISHED')",
            timeout=30_000,
        )
        body = page.inner_text("body")
        page.close()
        for kind in ("heads", "patch", "circuit"):
            assert kind in body, f"demo run of kind {kind} missing from the Runs page"
        assert "zoo:code-6l" in body
        assert not errors, errors
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    if process.returncode not in (0, -signal.SIGTERM, 2, 143):
        pytest.fail((tmp_path / "make-run.log").read_text()[-4000:])
