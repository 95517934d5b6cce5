"""The Heads page on a real ``importance`` run in headless Chromium: the grid opens on the
gradient importance, and the run's pruning curves and importance scatter are drawn below it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.seeding import job_run
from tests.browser.test_pages import wait_idle

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("HEADLAB_SCREENSHOTS", "/tmp/headlab-screens"))


@pytest.fixture(scope="module")
def importance_run(web_store, seeded, tmp_path_factory) -> int:
    """A real importance run (the job on induction-2l) committed to the store the server reads."""
    work = tmp_path_factory.mktemp("importance-job")
    return job_run(web_store, work, "importance", "induction-contrast", 8, "importance-ind")


def test_heads_page_of_an_importance_run_shows_its_pruning_curves(page, base_url, importance_run):
    page.set_viewport_size({"width": 1400, "height": 2000})
    page.goto(f"{base_url}/heads?run={importance_run}")
    page.wait_for_selector("#heads-heatmap .hm")
    wait_idle(page)
    assert page.locator("#heads-metric").inner_text().strip() == "grad_importance"
    blocks = page.locator("#heads-run-figures [data-figure]")
    blocks.first.wait_for()
    assert blocks.evaluate_all("els => els.map(e => e.dataset.figure)") == [
        "pruning_curve", "importance_scatter"
    ]  # fmt: skip
    curve = page.locator('#heads-run-figures [data-figure="pruning_curve"]')
    curve.locator(".js-plotly-plot").wait_for()
    legend = curve.locator(".legend").text_content() or ""
    for order in ("gradient importance", "ablation importance", "random"):
        assert order in legend, legend
    assert "% prunable" in legend
    scatter = page.locator('#heads-run-figures [data-figure="importance_scatter"]')
    scatter.locator(".js-plotly-plot").wait_for()
    assert "Spearman" in (scatter.locator(".gtitle").text_content() or "")
    wait_idle(page)
    assert page.console.errors == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "heads-importance.png"), full_page=True)
