"""A real headlab web server in a subprocess (``headlab serve`` with no workers) and a headless
Debian Chromium driven by Playwright, for the browser tests and ``bench/ui.py``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen, log=None, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = ""
            if log is not None:
                log.seek(0)
                output = log.read()
            elif process.stderr is not None:
                output = process.stderr.read()
            raise RuntimeError(f"server exited with {process.returncode}: {output[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (e.g. 401 when auth is on)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not answer within {timeout_s} s")


@contextmanager
def serve(env: dict[str, str], *extra: str) -> Iterator[str]:
    """Serve the app (``create_app`` + ``serve_app``) on a free loopback port; yields its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "tests.browser.run_server", str(port), *extra]
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/", process)
        yield url
    finally:
        stop(process, timeout_s=10)


def stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM (the server unwinds and stops its workers), SIGKILL after ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def browser_context(width: int = 1280, height: int = 800) -> Iterator[object]:
    """A fresh-profile headless Chromium context (Playwright)."""
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="headlab-chromium-") as profile,
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


def wait_until(page, expression: str, timeout: float = 15_000) -> None:
    """Poll until the JavaScript ``expression`` is true in ``page``. Playwright's
    ``wait_for_function`` builds its predicate with eval, which the workbench's CSP forbids;
    ``page.evaluate`` runs through the DevTools protocol, outside the page's CSP."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        try:
            if page.evaluate(f"() => Boolean({expression})"):
                return
        except Exception as exc:  # noqa: BLE001 — a navigation in flight; poll again
            if "Execution context was destroyed" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout / 1000:g} s: {expression}")
        time.sleep(0.1)


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)
