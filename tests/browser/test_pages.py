"""Every page in a real headless Chromium against a real server over a seeded SQLite store."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.browser.server import wait_until

pytestmark = pytest.mark.browser

PAGES = ["/", "/explore", "/heads", "/runs", "/launch", "/circuits", "/sae", "/compare",
         "/models", "/prompts"]  # fmt: skip


def wait_idle(page) -> None:
    """Until Dash has no callback in flight (its loading marker is gone)."""
    page.wait_for_selector("#page-content > *")
    wait_until(page, "!document.querySelector('[data-dash-is-loading=\"true\"]')")


def test_every_page_loads_without_console_errors(page, base_url):
    for path in PAGES:
        page.goto(base_url + path)
        wait_idle(page)
        page.wait_for_timeout(600)  # let the page's first callbacks land
        assert page.locator("h1").first.is_visible(), path
        assert page.console.errors == [], f"{path}: {page.console.errors}"
    page.goto(base_url + "/no-such-page")
    page.wait_for_selector("text=Page not found")


def test_first_page_comes_with_the_layout_and_links_navigate(page, base_url, seeded):
    """A full load renders the page from the layout (no router callback, nothing drawn
    twice); links, back and forward then go through the router."""
    bodies: list[str] = []
    page.on(
        "request",
        lambda r: "_dash-update-component" in r.url and bodies.append(r.post_data or ""),
    )
    page.goto(f"{base_url}/heads?run={seeded.heads}&metric=prev_token_score")
    wait_idle(page)
    page.wait_for_timeout(400)
    assert "prev_token_score" in svg_texts(page.locator("#heads-heatmap .gtitle"))[0]
    assert not any("page-content.children" in b for b in bodies), bodies
    page.locator(".nav-link", has_text="Runs").click()
    page.wait_for_selector("#runs-table table")
    assert page.url.endswith("/runs")
    page.go_back()
    page.wait_for_selector("#heads-heatmap .hm")
    assert "prev_token_score" in svg_texts(page.locator("#heads-heatmap .gtitle"))[0]
    page.go_forward()
    page.wait_for_selector("#runs-table table")
    assert page.locator("#heads-heatmap").count() == 0
    assert page.console.errors == []


def svg_texts(locator) -> list[str]:
    return locator.evaluate_all("els => els.map(e => e.textContent)")


def click_cell(page, layer: int, head: int, n_layers: int, n_heads: int) -> None:
    box = page.locator("#heads-heatmap .nsewdrag").first.bounding_box()
    x = box["x"] + (head + 0.5) * box["width"] / n_heads
    y = box["y"] + (layer + 0.5) * box["height"] / n_layers
    page.mouse.click(x, y)


def test_click_head_shows_its_pattern_and_arrow_keys_move(page, base_url, seeded):
    page.goto(f"{base_url}/heads?run={seeded.heads}&metric=induction_score")
    page.wait_for_selector("#heads-heatmap .hm")
    click_cell(page, 1, 2, n_layers=2, n_heads=4)
    title = page.locator("#heads-detail-title")
    wait_until(page, "document.querySelector('#heads-detail-title').innerText == 'Head 1.2'")
    pattern = page.locator("#heads-pattern")
    pattern.locator(".hm").wait_for()
    ticks = svg_texts(pattern.locator(".xtick text"))
    assert "<bos>" in ticks and "a" in ticks, ticks  # token labels on the key axis
    assert "<bos>" in svg_texts(pattern.locator(".ytick text"))
    assert page.locator("#heads-scores").get_by_text("induction_score").count() == 1
    assert page.locator("#heads-scores").get_by_text("#3 dla").count() == 1  # related DLA run
    # the selected head is outlined: the box sits over cell (1, 2) of the 2 × 4 grid
    outline = page.locator("#heads-heatmap .head-outline")
    outline.wait_for()
    cells = page.locator("#heads-heatmap .nsewdrag").first.bounding_box()
    box = outline.bounding_box()
    assert abs(box["x"] - (cells["x"] + 2 * cells["width"] / 4)) < 2
    assert abs(box["y"] - (cells["y"] + 1 * cells["height"] / 2)) < 2
    assert abs(box["width"] - cells["width"] / 4) < 2
    page.locator("body").click(position={"x": 5, "y": 300})  # focus off any input
    page.keyboard.press("ArrowLeft")
    wait_until(page, "document.querySelector('#heads-detail-title').innerText == 'Head 1.1'")
    page.keyboard.press("ArrowUp")
    wait_until(page, "document.querySelector('#heads-detail-title').innerText == 'Head 0.1'")
    assert title.inner_text() == "Head 0.1"
    # another prompt of the same head: 6 tokens on each axis
    page.locator("#heads-prompt").click()
    page.get_by_text("1: <bos>xyzxy").click()
    wait_until(page, "document.querySelectorAll('#heads-pattern .xtick text').length == 6")
    assert page.console.errors == []


def test_metric_switch_and_position_heatmap(page, base_url, seeded):
    page.goto(f"{base_url}/heads?run={seeded.patch}")
    page.wait_for_selector("#heads-heatmap .hm")
    assert "patch_z" in svg_texts(page.locator("#heads-heatmap .gtitle"))[0]
    page.wait_for_selector("#heads-position .hm")
    assert page.console.errors == []


def test_cancel_queued_run(page, base_url, seeded, web_store):
    page.goto(base_url + "/runs")
    row = page.locator(f"#run-row-{seeded.queued}")
    row.get_by_role("button", name="Cancel").click()
    page.wait_for_selector(f"text=Cancel requested for run #{seeded.queued}")
    row.locator(".badge.cancelled").wait_for()
    assert web_store.get_run(seeded.queued).status.value == "CANCELLED"
    failed = page.locator(f"#run-row-{seeded.failed}")
    assert failed.locator(".badge.failed").count() == 1
    assert page.get_by_text("prompt 2 is longer than the model context").is_visible()


def test_upload_bad_prompt_file_names_the_row(page, base_url, tmp_path, web_store):
    bad = tmp_path / "bad.csv"
    bad.write_text("clean,corrupted,correct,incorrect\nA B,C D,x,y\nE F,G H,,y\n")
    page.goto(base_url + "/prompts")
    page.fill("#prompts-upload-name", "bad-set")
    page.set_input_files("#prompts-upload input[type=file]", str(bad))
    page.wait_for_selector("text=bad.csv was not imported: 1 problem.")
    errors = page.locator("#prompts-upload-errors")
    assert errors.get_by_text(re.compile(r"empty 'correct' \(line 3\)")).is_visible()
    assert "bad-set" not in [p.name for p in web_store.list_prompt_sets()]
    # a structurally good file is queued for the worker's tokenizer check (test_catalog.py)
    good = tmp_path / "good.jsonl"
    good.write_text('{"clean": "a b", "corrupted": "c d", "correct": "x", "incorrect": "y"}\n')
    page.fill("#prompts-upload-name", "good-set")
    page.set_input_files("#prompts-upload input[type=file]", str(good))
    page.wait_for_selector("text=(prompts-import) queued")
    queued = web_store.list_runs(kind="prompts-import", limit=1)[0]
    assert queued.config["name"] == "good-set" and queued.status.value == "QUEUED"
    web_store.request_cancel(queued.id)  # leave no queued run for the other tests' workers


def test_circuit_threshold_slider_labels_are_round_and_inside_the_card(page, base_url, seeded):
    page.goto(f"{base_url}/circuits?run={seeded.circuits[0]}")
    page.locator(f"#circuit-graph-{seeded.circuits[0]} .scatterlayer").wait_for()
    marks = page.locator("#circuits-threshold .rc-slider-mark-text, #circuits-threshold "
                         ".dash-slider-mark").all_inner_texts()  # fmt: skip
    assert len(marks) >= 3, marks
    assert all(len(m.strip()) <= 6 for m in marks), marks  # e.g. 0, 0.5, 1, 1.5, 2
    slider = page.locator("#circuits-threshold").bounding_box()
    last = page.locator("#circuits-threshold .rc-slider-mark-text, #circuits-threshold "
                        ".dash-slider-mark").last.bounding_box()  # fmt: skip
    card = page.locator(".sliders").bounding_box()
    assert slider and last and card
    assert last["x"] + last["width"] <= card["x"] + card["width"] + 1  # not clipped
    assert page.console.errors == []


def test_circuit_slider_prunes_live(page, base_url, seeded):
    page.goto(f"{base_url}/circuits?run={seeded.circuits[0]}")
    graph = page.locator(f"#circuit-graph-{seeded.circuits[0]}")
    graph.locator(".scatterlayer").wait_for()
    page.get_by_text("top-k edges").click()
    wait_until(
        page, "document.querySelectorAll('#circuits-edges .dash-spreadsheet tbody tr').length > 3"
    )
    before = page.locator("#circuits-edges tbody tr").count()
    page.locator("#circuits-topk input").fill("3")
    page.locator("#circuits-topk input").press("Enter")
    wait_until(
        page, "document.querySelectorAll('#circuits-edges .dash-spreadsheet tbody tr').length == 4"
    )
    assert before > 4  # header row + 3 edges after pruning
    assert page.console.errors == []


def test_sae_page_of_a_non_sae_run_names_the_run_it_shows(page, base_url, seeded):
    page.goto(f"{base_url}/sae?run={seeded.heads}")
    page.locator("#sae-features tbody tr td").nth(3).wait_for()
    wait_idle(page)
    note = page.locator("#sae-message").inner_text()
    assert f"Run #{seeded.heads} (heads, finished) is not" in note and f"#{seeded.sae}." in note
    assert page.locator("#sae-run").inner_text().startswith(f"#{seeded.sae} sae-train")
    cells = page.locator("#sae-features tbody tr td").all_inner_texts()
    assert any(c.strip() for c in cells)  # the table shows the picked run's features
    assert page.locator("#sae-training .js-plotly-plot").count() == 1


def test_sae_feature_pick_shows_contexts(page, base_url, seeded):
    page.goto(f"{base_url}/sae?run={seeded.sae}")
    page.locator("#sae-features tbody tr td").nth(3).wait_for()
    page.locator("#sae-contexts .ctx").first.wait_for()
    assert page.locator("#sae-contexts .tok").count() >= 6
    page.locator("#sae-shares .barlayer").wait_for()
    assert page.console.errors == []


def test_export_heatmap_downloads_svg(page, base_url, seeded):
    page.goto(f"{base_url}/heads?run={seeded.heads}&metric=induction_score")
    page.wait_for_selector("#heads-heatmap .hm")
    menu = page.locator('[id*="heads-heatmap"][id*="export-menu"]')
    options = menu.locator(".export-summary")
    assert options.inner_text() == "SVG · column"
    options.click()  # the format and paper choices open under it
    choices = menu.locator(".export-more[open] .export-options")
    choices.get_by_text("PDF").click()
    wait_until(
        page,
        'document.querySelector(\'[id*="heads-heatmap"][id*="export-menu"] '
        ".export-summary').innerText == 'PDF · column'",
    )
    choices.get_by_text("SVG").click()
    options.click()  # closed again
    start = time.monotonic()
    with page.expect_download(timeout=120_000) as info:
        menu.locator(".export-button").click()
    path = info.value.path()
    data = Path(path).read_bytes()
    assert info.value.suggested_filename.endswith(".svg")
    assert b"<svg" in data[:2000], data[:200]
    assert time.monotonic() - start < 120
    # the pattern's menu before a head is picked: the error shows beside its button
    pattern_menu = page.locator('[id*="heads-pattern"][id*="export-menu"]')
    pattern_menu.locator(".export-button").click()
    pattern_menu.locator(".export-error", has_text="nothing to export yet").wait_for()
    assert page.console.errors == []
