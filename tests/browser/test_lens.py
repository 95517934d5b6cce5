"""The Heads page on a real ``lens`` run in headless Chromium: after a click, the selected head's
OV lens and its lenses' token tables, drawn from the run's stored artifact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.seeding import job_run
from tests.browser.server import wait_until
from tests.browser.test_pages import click_cell, wait_idle

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("HEADLAB_SCREENSHOTS", "/tmp/headlab-screens"))
LENS_FIGURES = ["ov_lens", "logit_lens_tokens", "trained_lens_tokens"]


@pytest.fixture(scope="module")
def lens_run(web_store, seeded, tmp_path_factory) -> int:
    """A real lens run (the job on induction-2l, a small trained lens) committed to the store
    the server reads."""
    work = tmp_path_factory.mktemp("lens-job")
    return job_run(web_store, work, "lens", "induction", 4, "lens-ind", train=True, train_steps=10)


def test_heads_page_of_a_lens_run_shows_the_heads_lenses(page, base_url, lens_run):
    page.set_viewport_size({"width": 1400, "height": 2000})
    page.goto(f"{base_url}/heads?run={lens_run}")
    page.wait_for_selector("#heads-heatmap .hm")
    wait_idle(page)
    assert page.locator("#heads-metric").inner_text().strip() == "ov_copy_score"
    click_cell(page, 1, 2, n_layers=2, n_heads=4)
    wait_until(page, "document.querySelector('#heads-detail-title').innerText == 'Head 1.2'")
    blocks = page.locator("#heads-head-figures [data-figure]")
    blocks.first.wait_for()
    assert blocks.evaluate_all("els => els.map(e => e.dataset.figure)") == LENS_FIGURES
    for name in LENS_FIGURES:
        page.locator(f'#heads-head-figures [data-figure="{name}"] .js-plotly-plot').wait_for()
    wait_idle(page)
    assert page.console.errors == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "heads-lens.png"), full_page=True)
