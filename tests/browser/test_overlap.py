"""The Circuit overlap page in headless Chromium: three stored circuits with known nodes, the
membership grid with its legend, the pairwise matrix, the tables, and the level switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.app.overlap_runs import CIRCUITS, store_circuits
from tests.browser.server import wait_until
from tests.browser.test_pages import svg_texts, wait_idle

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("HEADLAB_SCREENSHOTS", "/tmp/headlab-screens"))


@pytest.fixture(scope="module")
def overlap_runs(web_store, seeded) -> dict[str, int]:
    return store_circuits(web_store)


def test_overlap_page_shows_the_grid_its_legend_and_the_pairs(page, base_url, overlap_runs):
    runs = overlap_runs
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.goto(f"{base_url}/overlap?runs={runs['A']},{runs['B']},{runs['C']}")
    grid = page.locator("#overlap-grid")
    grid.locator(".hm, .heatmaplayer image, .heatmaplayer").first.wait_for()
    grid.locator(".legendtext").first.wait_for()
    wait_idle(page)
    legend = svg_texts(grid.locator(".legendtext"))
    labels = [f"#{runs[k]} {CIRCUITS[k][2]}" for k in "ABC"]
    assert legend == [
        "in all 3 circuits (shared)", "in 2 of 3 circuits",
        *(f"only in {label} (task-specific)" for label in labels), "in no circuit",
    ]  # fmt: skip
    matrix = page.locator("#overlap-matrix")
    matrix.locator(".heatmaplayer").first.wait_for()
    cells = svg_texts(matrix.locator("text"))
    assert "0.50" in cells and "0.67" in cells  # A·B: Jaccard 2/4, overlap 2/3 of heads
    wait_until(
        page, "document.querySelectorAll('#overlap-pairs .dash-spreadsheet tbody tr').length == 4"
    )
    assert "a1.h2" in page.locator("#overlap-edges").inner_text()
    page.get_by_text("heads + MLPs").click()
    wait_until(
        page,
        "Array.from(document.querySelectorAll('#overlap-pairs tbody td'))"
        ".some(td => td.innerText.trim() === '0.4')",
    )
    wait_idle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "overlap.png"), full_page=True)
    assert page.console.errors == []


def test_compare_page_of_two_circuit_runs_links_to_the_overlap(page, base_url, overlap_runs):
    a, b = overlap_runs["A"], overlap_runs["B"]
    page.goto(f"{base_url}/compare?a={a}&b={b}")
    link = page.get_by_text("Compare circuits across tasks")
    link.click()
    page.locator("#overlap-grid .legendtext").first.wait_for()
    assert page.url.endswith(f"/overlap?runs={a},{b}")
    assert page.console.errors == []


def test_overlap_page_without_runs_and_with_one_run(page, base_url, overlap_runs):
    page.goto(f"{base_url}/overlap")
    wait_idle(page)
    assert page.locator("h1").first.inner_text() == "Circuit overlap"
    page.goto(f"{base_url}/overlap?runs={overlap_runs['A']}")
    page.locator("#overlap-message", has_text="overlap needs two or more circuit runs").wait_for()
    assert page.console.errors == []
