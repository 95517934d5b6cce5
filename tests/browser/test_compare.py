"""The Compare page on a checkpoint pair in headless Chromium: real ``heads`` runs on the zoo's
induction-2l-early (step 150) and induction-2l (step 1400). The page opens on that pair, names
it, lists the layer-1 heads as the top movers, and a click on a mover shows its attention in
both checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.server import wait_until
from tests.browser.test_pages import wait_idle

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("HEADLAB_SCREENSHOTS", "/tmp/headlab-screens"))


@pytest.fixture(scope="module")
def checkpoint_pair(web_env, seeded) -> tuple[int, int]:
    import headlab

    lab = headlab.Lab(web_env["HEADLAB_HOME"])
    options = {"repeated_sequences": 4, "repeat_length": 12, "progress": False}
    early = lab.run("heads", "zoo:induction-2l-early", **options).id
    late = lab.run("heads", "zoo:induction-2l", **options).id
    lab.close()
    return early, late


def test_compare_page_opens_on_the_checkpoint_pair_and_shows_a_movers_attention(
    page, base_url, checkpoint_pair
):
    early, late = checkpoint_pair
    page.set_viewport_size({"width": 1400, "height": 2000})
    page.goto(f"{base_url}/compare")
    page.wait_for_selector("#compare-movers td[data-dash-column='head']")
    wait_idle(page)
    message = page.locator("#compare-message").inner_text()
    assert message.startswith("Checkpoint comparison: induction-2l-early → induction-2l")
    assert page.locator("#compare-metric").inner_text().strip() == "induction_score"
    assert f"#{early} " in page.locator("#compare-run-a").inner_text()
    assert f"#{late} " in page.locator("#compare-run-b").inner_text()
    cells = page.locator("#compare-movers td[data-dash-column='head']")
    heads = cells.evaluate_all("els => els.map(e => e.innerText.trim())")
    assert sorted(heads[:4]) == ["1.0", "1.1", "1.2", "1.3"]
    page.locator("#compare-movers-chart .js-plotly-plot").wait_for()
    cells.nth(2).click()
    expected = f"Head {heads[2]}: attention in A and in B"
    wait_until(page, f"document.querySelector('#compare-mover-title').innerText == '{expected}'")
    for graph in ("#compare-pattern-a", "#compare-pattern-b"):
        page.locator(f"{graph} .js-plotly-plot .heatmaplayer").wait_for()
    wait_idle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "compare-checkpoints.png"), full_page=True)
    assert page.console.errors == []
