"""The Heads page on a ``taxonomy`` run in headless Chromium: the run-level figures below the
grid (the KV-cache curve first) and, after a click, the selected head's figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.services.figures import KINDS
from tests.browser.seeding import seed_taxonomy
from tests.browser.server import wait_until
from tests.browser.test_pages import click_cell, wait_idle

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("HEADLAB_SCREENSHOTS", "/tmp/headlab-screens"))


@pytest.fixture(scope="module")
def taxonomy_run(web_store, seeded) -> int:
    return seed_taxonomy(web_store, web_store.get_prompt_set("demo").id)


def test_heads_page_of_a_taxonomy_run_shows_its_figures(page, base_url, taxonomy_run):
    page.set_viewport_size({"width": 1400, "height": 1800})
    page.goto(f"{base_url}/heads?run={taxonomy_run}")
    page.wait_for_selector("#heads-heatmap .hm")
    wait_idle(page)
    assert page.locator("#heads-metric").inner_text().strip() == "retrieval_score"
    kv = page.locator('#heads-run-figures [data-figure="kv_curve"]')
    assert kv.get_by_text("KV-cache budget curve").count() == 1
    if "kv_curve" in KINDS:
        kv.locator(".js-plotly-plot").wait_for()
    else:  # the kind has not landed: its message, in place of the figure
        assert "unknown figure kind" in kv.locator(".figure-note").inner_text()
    blocks = page.locator("#heads-run-figures [data-figure]")
    assert blocks.evaluate_all("els => els.map(e => e.dataset.figure)") == [
        "kv_curve", "head_similarity", "massive_activations"
    ]  # fmt: skip
    click_cell(page, 1, 2, n_layers=2, n_heads=4)
    wait_until(page, "document.querySelector('#heads-detail-title').innerText == 'Head 1.2'")
    head_blocks = page.locator("#heads-head-figures [data-figure]")
    head_blocks.first.wait_for()
    assert head_blocks.evaluate_all("els => els.map(e => e.dataset.figure)") == [
        "retrieval_map", "span_profile", "dormancy"
    ]  # fmt: skip
    wait_idle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "heads-taxonomy.png"), full_page=True)
    assert page.console.errors == []
