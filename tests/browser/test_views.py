"""Views that must say what they show, in headless Chromium (issue 20, item 5): the Heads
page's per-position grid (token labels of a prompt shorter than the grid, a layer-1 head's grid
without an empty layer-0 band, a sibling run's grids for a run with none), the Launch form
(labels in words, required marks, an empty required field refused), the Compare page's hover
label following an arrow-key move, and SAE contexts shaded per context with the peak marked.
Screenshots go to ``$HEADLAB_SHOTS`` when it is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.records import HeadResultIn, RunOutput
from tests.app.test_view_clarity import WIDE, wide_patch_rows
from tests.browser.seeding import finished
from tests.browser.server import wait_until
from tests.browser.test_pages import click_cell, svg_texts, wait_idle

pytestmark = pytest.mark.browser


def shot(page, name: str) -> None:
    folder = os.environ.get("HEADLAB_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def patch_runs(web_store, seeded) -> tuple[int, int]:
    """A patch run with per-head per-position grids wider than every seeded prompt, and a
    patch run on the same model and set with none of its own."""
    ps = web_store.get_prompt_set("demo").id
    wide = finished(web_store, "patch", RunOutput(head_results=wide_patch_rows()), ps)
    rows = [HeadResultIn("patch_z", la, h, 0.5) for la in range(2) for h in range(4)]
    bare = finished(web_store, "patch", RunOutput(head_results=rows), ps)
    return wide, bare


def position_ticks(page, axis: str) -> list[str]:
    return svg_texts(page.locator(f"#heads-position .{axis}tick text"))


def test_per_position_grid_has_token_labels_and_only_the_heads_layer(page, base_url, patch_runs):
    wide, _ = patch_runs
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.goto(f"{base_url}/heads?run={wide}")
    page.wait_for_selector("#heads-position .hm")
    ticks = position_ticks(page, "x")
    # the longest seeded prompt has 9 tokens: they label positions 0-8, 9-11 keep numbers
    assert ticks[:3] == ["<bos>", "p", "q"] and ticks[9:] == ["9", "10", "11"]
    assert len(ticks) == WIDE
    click_cell(page, 1, 2, n_layers=2, n_heads=4)
    wait_until(page, "document.querySelector('#heads-detail-title').innerText == 'Head 1.2'")
    wait_until(page, "[...document.querySelectorAll('#heads-position .gtitle')]"
                     ".some(t => t.textContent.includes('head 1.2'))")  # fmt: skip
    assert position_ticks(page, "y") == ["1"]  # no empty layer-0 band
    assert position_ticks(page, "x")[0] == "<bos>"
    wait_idle(page)
    shot(page, "heads-position-head-1.2")
    assert page.console.errors == []


def test_a_run_without_per_position_grids_shows_a_sibling_runs(page, base_url, patch_runs):
    wide, bare = patch_runs
    page.goto(f"{base_url}/heads?run={bare}")
    page.wait_for_selector("#heads-position .hm")
    assert f"#{wide} patch · patch_z" in page.locator("#heads-position-metric").inner_text()
    assert page.get_by_text("No per-position results").count() == 0
    assert page.console.errors == []


def test_launch_form_labels_required_fields_and_refuses_an_empty_one(page, base_url, web_store):
    page.goto(base_url + "/launch?kind=patch")
    page.wait_for_selector("text=Validate and enqueue")
    labels = page.locator(".form .form-label").evaluate_all("els => els.map(e => e.innerText)")
    assert labels[:2] == ["Model *", "Prompt set *"] and "Max pairs" in labels
    assert not any("_" in label for label in labels)
    required = page.locator('[aria-required="true"]').evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))"
    )
    assert required == ["Model", "Prompt set"]
    before = web_store.count_runs()
    page.get_by_role("button", name="Validate and enqueue").click()
    error = page.locator('[id=\'{"field":"prompt_set","type":"launch-field-error"}\']')
    error.get_by_text("Prompt set is required for a patch run").wait_for()
    assert web_store.count_runs() == before
    page.goto(base_url + "/launch?kind=circuit")
    page.get_by_text("IG steps", exact=True).wait_for()
    shot(page, "launch-circuit-labels")
    assert page.console.errors == []


def test_compare_hover_label_follows_an_arrow_key_move(page, base_url, seeded):
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.goto(f"{base_url}/compare?a={seeded.heads}&b={seeded.compare}&metric=induction_score")
    cells = page.locator("#compare-movers td[data-dash-column='head']")
    cells.first.wait_for()
    page.locator("#compare-movers-chart .js-plotly-plot .bars").wait_for()
    heads = cells.evaluate_all("els => els.map(e => e.innerText.trim())")
    cells.first.click()
    wait_until(page, f"document.querySelector('#compare-mover-title').innerText"
                     f".startsWith('Head {heads[0]}:')")  # fmt: skip
    page.keyboard.press("ArrowDown")
    wait_until(page, f"document.querySelector('#compare-mover-title').innerText"
                     f".startsWith('Head {heads[1]}:')")  # fmt: skip
    label = "[...document.querySelectorAll('#compare-movers-chart .hoverlayer text')]"
    wait_until(page, f"{label}.some(t => t.textContent.startsWith('head {heads[1]}'))")
    assert page.evaluate(f"{label}.every(t => !t.textContent.startsWith('head {heads[0]}'))")
    shot(page, "compare-arrow-key-hover")
    assert page.console.errors == []


def test_sae_contexts_mark_each_contexts_peak(page, base_url, seeded, web_store):
    from app.services import sae

    page.goto(f"{base_url}/sae?run={seeded.sae}")
    page.locator("#sae-features td[data-dash-column='feature']").first.click()
    page.locator("#sae-contexts .tok.peak").first.wait_for()
    feature = int(page.locator("#sae-features td[data-dash-column='feature']").first.inner_text())
    contexts = sae.top_contexts(web_store, seeded.sae, feature)
    peaks = page.locator("#sae-contexts .tok.peak")
    assert peaks.count() == len(contexts)
    for i, context in enumerate(contexts):
        acts = [float(a) for a in context["acts"]]
        top = max(range(len(acts)), key=acts.__getitem__)
        assert peaks.nth(i).inner_text() == context["tokens"][top]
        assert page.locator("#sae-contexts .peak-value").nth(i).inner_text() == f"{acts[top]:.3g}"
    weight = peaks.first.evaluate("e => getComputedStyle(e).fontWeight")
    assert int(weight) >= 700
    alphas = (
        page.locator("#sae-contexts .ctx")
        .first.locator(".tok")
        .evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    )
    assert "rgb(214, 96, 77)" in alphas  # the peak at full strength (alpha 1 drops from rgba)
    shot(page, "sae-contexts-peaks")
    assert page.console.errors == []


def test_heads_page_of_a_queued_run_says_it_is_queued(page, base_url, web_store):
    ps = web_store.get_prompt_set("demo").id
    config = {"kind": "heads", "model": "zoo:induction-2l", "prompt_set": "demo"}
    run = web_store.enqueue_run("heads", config, "zoo:induction-2l", ps, {}, "test")
    try:
        page.goto(f"{base_url}/heads?run={run.id}")
        page.get_by_text(f"Run #{run.id} (heads) is queued (0%)").wait_for()
        assert page.get_by_text("stores no per-head metrics").count() == 0
        assert page.console.errors == []
    finally:
        web_store.request_cancel(run.id)  # no worker of a later test picks it up
