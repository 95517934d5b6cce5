"""Launch a run from the form, see validation errors next to fields, and watch a real worker
process finish it on the Runs page."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.browser.server import wait_until

pytestmark = pytest.mark.browser

MODEL = "zoo:induction-2l"


def field(page, name: str):
    return page.locator(f'[id=\'{{"field":"{name}","type":"launch-field"}}\']')


def worker_can_load_models() -> bool:
    return importlib.util.find_spec("analysis.models") is not None


def test_launch_validates_then_a_worker_finishes_the_run(page, base_url, web_store, web_env):
    page.goto(base_url + "/launch?kind=throughput")
    page.wait_for_selector("text=Validate and enqueue")
    before = web_store.count_runs()
    field(page, "model").fill(MODEL)
    field(page, "steps").fill("0")
    page.get_by_role("button", name="Validate and enqueue").click()
    error = page.locator('[id=\'{"field":"steps","type":"launch-field-error"}\']')
    error.get_by_text("greater than or equal to 1").wait_for()
    assert web_store.count_runs() == before  # nothing enqueued on error
    field(page, "steps").fill("2")
    field(page, "batch").fill("1")
    field(page, "seq_len").fill("8")
    page.get_by_role("button", name="Validate and enqueue").click()
    page.wait_for_selector("#launch-run-link")
    assert error.inner_text() == ""
    run = web_store.list_runs(limit=1)[0]
    link = page.locator("#launch-run-link")  # the run's own page, not the run list
    assert link.inner_text() == f"Open run #{run.id} →"
    assert link.get_attribute("href") == f"/heads?run={run.id}"
    assert run.kind == "throughput" and run.config["steps"] == 2 and run.status.value == "QUEUED"
    assert run.versions.get("dash") and run.code_version
    if not worker_can_load_models():
        pytest.skip("analysis.models is not installed yet: no worker can load a model")
    page.goto(base_url + "/runs")
    row = page.locator(f"#run-row-{run.id}")
    row.locator(".badge.queued").wait_for()
    worker = subprocess.run(
        # --kind: the seeded store also holds an older queued run of another kind
        [sys.executable, "-m", "app.cli", "worker", "--once", "--kind", "throughput"],
        env=web_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr
    row.locator(".badge.finished").wait_for(timeout=30_000)  # the page polls while active
    assert web_store.get_run(run.id).status.value == "FINISHED"


def test_file_fields_take_an_upload_and_refuse_server_paths(page, base_url, web_store):
    page.goto(base_url + "/launch?kind=sae-train")
    page.wait_for_selector("text=Validate and enqueue")
    before = web_store.count_runs()
    field(page, "model").fill(MODEL)
    field(page, "text_path").fill("/etc/passwd")
    page.get_by_role("button", name="Validate and enqueue").click()
    error = page.locator('[id=\'{"field":"text_path","type":"launch-field-error"}\']')
    error.get_by_text("server paths are not accepted from the web").wait_for()
    assert web_store.count_runs() == before
    text = b"def f(x):\n    return x + 1\n" * 40
    upload = page.locator('[id=\'{"field":"text_path","type":"launch-upload"}\'] input[type=file]')
    upload.set_input_files(files=[{"name": "corpus.py", "mimeType": "text/plain", "buffer": text}])
    wait_until(page, "document.querySelector('[id*=text_path] input, input[id*=text_path]')"
               ".value.startsWith('upload:')")  # fmt: skip
    value = field(page, "text_path").input_value()
    assert web_store.uploads.resolve(value).read_bytes() == text
    assert page.console.errors == []
