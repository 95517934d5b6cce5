"""The Explore page in headless Chromium with a real worker (explore runs only): type a
sentence, submit, every head's thumbnail appears; hover focuses a head, a click locks it
(hover then leaves it), a second click unlocks; a token click shades the text by the focused
head's attention from that token; the same text again reuses the finished run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.server import wait_until
from tests.browser.test_pages import wait_idle

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("HEADLAB_SCREENSHOTS", "/tmp/headlab-screens"))
WAIT_MS = 120_000  # the worker's first job imports torch and loads the zoo model
TEXT = "abcdeabcd"


@pytest.fixture(scope="module")
def explore_worker(web_env: dict[str, str], base_url: str, tmp_path_factory) -> Iterator[None]:
    log = (tmp_path_factory.mktemp("explore-worker") / "worker.log").open("w+")
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--kind", "explore", "--heartbeat-s", "0.5"],
        env=web_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    log.close()


def title_is(page, text: str) -> None:
    wait_until(page, f"document.querySelector('#explore-focus-title').innerText == {text!r}")


def thumb(page, layer: int, head: int):
    return page.locator(f'#explore-thumbs .explore-thumb[data-layer="{layer}"][data-head="{head}"]')


def shading(page) -> list[str]:
    return page.locator("#explore-tokens .explore-token").evaluate_all(
        "els => els.map(e => e.title)"
    )


def test_type_submit_and_see_every_head(page, base_url, web_store, explore_worker):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(base_url + "/explore")
    page.fill("#explore-text", TEXT)
    page.get_by_role("button", name="Explore").click()
    page.locator("#explore-thumbs .explore-thumb").first.wait_for(timeout=WAIT_MS)
    assert page.locator("#explore-thumbs .explore-thumb img").count() == 2 * 4
    for drawn in ("#explore-pattern .hm", "#explore-dla .hm", "#explore-lens .scatterlayer .trace",
                  "#explore-overlay .scatterlayer .trace"):  # fmt: skip
        page.wait_for_selector(drawn)  # each figure's own callback, after the thumbnails
    wait_idle(page)
    status = page.locator("#explore-status").inner_text()
    assert status.startswith("Run #") and "10 tokens" in status
    run_id = int(status.split("#")[1].split()[0])
    assert web_store.get_run(run_id).config["text"] == TEXT

    thumb(page, 1, 2).hover()
    title_is(page, "Head 1.2")
    thumb(page, 1, 2).click()
    title_is(page, "Head 1.2 (locked)")
    assert "locked" in thumb(page, 1, 2).get_attribute("class")
    thumb(page, 0, 1).hover()
    page.wait_for_timeout(400)
    assert page.locator("#explore-focus-title").inner_text() == "Head 1.2 (locked)"
    before = shading(page)
    page.locator('#explore-tokens .explore-token[data-pos="6"]').click()
    wait_until(
        page, "document.querySelector('#explore-tokens [data-pos=\"6\"]').classList"
        ".contains('selected')",
    )  # fmt: skip
    wait_idle(page)
    after = shading(page)
    assert after != before and len(after) == 10
    weights = [float(t.rsplit(" ", 1)[1]) for t in after]
    assert sum(weights) == pytest.approx(1.0, abs=0.01)  # a row of the pattern
    assert weights[7:] == [0.0, 0.0, 0.0]  # causal: token 6 attends to none after it
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "explore.png"), full_page=True)

    thumb(page, 1, 2).click()  # unlock
    title_is(page, "Head 1.2")
    thumb(page, 0, 1).hover()
    title_is(page, "Head 0.1")

    page.get_by_role("button", name="Explore").click()  # the same text: the run is reused
    page.get_by_text(f"Run #{run_id} reused").wait_for()
    assert web_store.count_runs(kind="explore") == 1
    title_is(page, "Head 0.0")  # the new panels start on head 0.0, unlocked
    thumb(page, 0, 1).hover()  # the head hovered last before: focused again on the new panels
    title_is(page, "Head 0.1")
    thumb(page, 1, 0).focus()  # keyboard: focus a thumbnail, Enter locks, Enter again unlocks
    title_is(page, "Head 1.0")
    page.keyboard.press("Enter")
    title_is(page, "Head 1.0 (locked)")
    page.keyboard.press("Enter")
    title_is(page, "Head 1.0")
    assert page.console.errors == []


def test_empty_text_is_refused_on_the_page(page, base_url):
    page.goto(base_url + "/explore")
    page.fill("#explore-text", "   ")
    page.get_by_role("button", name="Explore").click()
    page.get_by_text("text: it is empty; type or paste some text").wait_for()
    assert page.console.errors == []
