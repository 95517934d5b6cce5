"""Path patching from the UI in headless Chromium: the launch form refuses a receiver that is not
after its sender next to the field, enqueues a valid path-patch run on zoo:induction-2l, a real
worker process finishes it, and the Heads page shows its per-sender grid and the sender ×
receiver grid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.seeding import MODEL
from tests.browser.test_launch import field
from tests.browser.test_pages import wait_idle

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("HEADLAB_SCREENSHOTS", "/tmp/headlab-screens"))


@pytest.fixture(scope="module")
def prompt_set(web_store) -> str:
    from analysis.models import load_model
    from analysis.prompts.generators import generate_pairs

    name = "path-ic"
    pairs = generate_pairs(load_model(MODEL), "induction-contrast", 8, 0)
    web_store.add_prompt_set(name, pairs, "test", MODEL)
    return name


def test_launch_a_path_patch_run_and_see_its_grid(page, base_url, web_store, web_env, prompt_set):
    page.set_viewport_size({"width": 1400, "height": 2000})
    page.goto(base_url + "/launch?kind=path-patch")
    page.wait_for_selector("text=Validate and enqueue")
    before = web_store.count_runs()
    field(page, "model").fill(MODEL)
    field(page, "prompt_set").click()
    page.keyboard.type(prompt_set)
    page.keyboard.press("Enter")
    field(page, "senders").fill("a1.h0")
    field(page, "receivers").fill("a0.h2")
    page.get_by_role("button", name="Validate and enqueue").click()
    error = page.locator('[id=\'{"field":"receivers","type":"launch-field-error"}\']')
    error.get_by_text("a0.h2 is not after sender a1.h0").wait_for()
    assert web_store.count_runs() == before
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "launch-path-patch.png"), full_page=True)
    field(page, "senders").fill("")
    field(page, "receivers").fill("a1.h0, a1.h1, a1.h2, a1.h3, logits")
    page.get_by_role("button", name="Validate and enqueue").click()
    page.wait_for_selector("#launch-run-link")
    run = web_store.list_runs(limit=1)[0]
    assert run.kind == "path-patch" and run.config["receivers"][-1] == "logits"
    worker = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker", "--once", "--kind", "path-patch"],
        env=web_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    assert web_store.get_run(run.id).status.value == "FINISHED", web_store.get_run(run.id).error

    page.goto(f"{base_url}/heads?run={run.id}")
    page.wait_for_selector("#heads-heatmap .hm")
    wait_idle(page)
    assert page.locator("#heads-metric").inner_text().strip() == "path_logits"
    grid = page.locator('#heads-run-figures [data-figure="path_grid"]')
    grid.locator(".js-plotly-plot").wait_for()
    ticks = grid.locator(".ytick text").all_text_contents()
    assert sorted(ticks) == [f"a{layer}.h{h}" for layer in (0, 1) for h in range(4)], ticks
    receivers = grid.locator(".xtick text").all_text_contents()
    assert receivers[:3] == ["a1.h0<q>", "a1.h0<k>", "a1.h0<v>"], receivers
    assert receivers[-1] == "logits" and len(receivers) == 13
    assert "path patching" in (grid.locator(".gtitle").text_content() or "")
    wait_idle(page)
    assert page.console.errors == []
    page.screenshot(path=str(SHOTS / "heads-path-patch.png"), full_page=True)
