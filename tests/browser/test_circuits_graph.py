"""The circuit graph in headless Chromium: an edge's hover shows its score and rank, the legend
says what a dotted line means, a click on a head node opens that head on the Heads page (and
the Heads page's ?head= selects a head on a full load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.server import wait_until

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots_E")

# (x, y) in page pixels of a point given in data units of the graph of ``#{graph}``
POINT_JS = """([graph, x, y]) => {
    const gd = document.querySelector('#' + graph + ' .js-plotly-plot');
    const full = gd._fullLayout, box = gd.querySelector('.nsewdrag').getBoundingClientRect();
    return [box.left + full.xaxis.l2p(x), box.top + full.yaxis.l2p(y)];
}"""
# the graph's trace whose meta is ``role``: its x, y, text and customdata
TRACE_JS = """([graph, role]) => {
    const gd = document.querySelector('#' + graph + ' .js-plotly-plot');
    const t = gd._fullData.find(d => d.meta === role);  // decoded (x, y may be typed)
    return {x: Array.from(t.x), y: Array.from(t.y), text: t.text || null,
            customdata: t.customdata ? Array.from(t.customdata, r => Array.from(r)) : null};
}"""


def open_graph(page, base_url: str, run: int) -> str:
    graph = f"circuit-graph-{run}"
    page.goto(f"{base_url}/circuits?run={run}")
    page.locator(f"#{graph} .scatterlayer .trace").first.wait_for()
    page.locator(f"#{graph} .legend").wait_for()
    return graph


def test_hovering_an_edge_midpoint_shows_its_score_and_rank(page, base_url, seeded, web_store):
    SHOTS.mkdir(exist_ok=True)
    run = seeded.circuits[0]
    graph = open_graph(page, base_url, run)
    edges = web_store.edges(run)
    hover = page.evaluate(TRACE_JS, [graph, "edge-hover"])
    # the stored circuit: a0.h1 → a1.h2<k> (3.0) and a1.h2 → logits (2.5)
    i = hover["text"].index("a0.h1 → a1.h2 (key)")
    score, rank, member = hover["customdata"][i]
    assert (score, member) == (3.0, 1)
    expected_rank = 1 + int((edges["score"].abs() > 3.0).sum())
    assert rank == expected_rank
    x, y = page.evaluate(POINT_JS, [graph, hover["x"][i], hover["y"][i]])
    page.mouse.move(x, y)
    tip = page.locator(f"#{graph} .hoverlayer .hovertext")
    tip.wait_for()
    text = tip.text_content() or ""
    assert "a0.h1 → a1.h2 (key)" in text, text
    assert "score 3" in text and f"rank {expected_rank} of {len(edges)} by |score|" in text, text
    assert "in the stored circuit" in text
    page.screenshot(path=str(SHOTS / "circuit_hover.png"))
    legend = page.locator(f"#{graph} .legend .legendtext").evaluate_all(
        "nodes => nodes.map(n => n.textContent)"
    )
    assert "score < 0 (dotted)" in legend and "score > 0" in legend, legend
    assert "→ key" in legend and any(t.startswith("width ∝ |score|") for t in legend), legend
    page.get_by_text("top-k edges").click()  # 20 edges: every channel, both signs
    page.locator(f"#{graph} .legend .legendtext", has_text="→ value").wait_for()
    page.locator(".circuit-card").first.screenshot(path=str(SHOTS / "circuit_top20.png"))
    note = page.locator("#circuits-position-note").text_content() or ""
    assert "store no per-position scores" in note
    page.screenshot(path=str(SHOTS / "circuits_page.png"), full_page=True)
    assert page.console.errors == []


def test_clicking_a_head_node_opens_it_on_the_heads_page(page, base_url, seeded):
    run = seeded.circuits[0]
    graph = open_graph(page, base_url, run)
    nodes = page.evaluate(TRACE_JS, [graph, "nodes"])
    i = nodes["text"].index("a1.h2")
    x, y = page.evaluate(POINT_JS, [graph, nodes["x"][i], nodes["y"][i]])
    page.mouse.move(x, y)
    tip = page.locator(f"#{graph} .hoverlayer .hovertext")
    tip.wait_for()
    assert "click: this head on the Heads page" in (tip.text_content() or "")
    page.mouse.click(x, y)
    page.wait_for_url(f"**/heads?run={seeded.compare}&head=a1.h2")
    page.locator("#heads-detail-title", has_text="Head 1.2").wait_for()
    page.locator("#heads-heatmap .head-outline").wait_for(state="attached")
    page.locator("#heads-pattern .js-plotly-plot").wait_for()
    page.screenshot(path=str(SHOTS / "heads_from_circuit.png"))
    # back to the circuit: its graph is drawn again and a click on no node goes nowhere
    page.go_back()
    graph_box = page.locator(f"#{graph} .nsewdrag")
    graph_box.wait_for()
    page.locator(f"#{graph} .scatterlayer .trace").first.wait_for()
    box = graph_box.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 4, box["y"] + 4)  # an empty corner
    page.wait_for_timeout(300)
    assert page.url.endswith(f"/circuits?run={run}")
    assert page.console.errors == []


def test_heads_page_url_selects_a_head_on_a_full_load(page, base_url, seeded):
    page.goto(f"{base_url}/heads?run={seeded.heads}&head=a0.h3")
    page.locator("#heads-detail-title", has_text="Head 0.3").wait_for()
    wait_until(page, "!!document.querySelector('#heads-heatmap .head-outline')")
    assert page.console.errors == []


def test_clicking_a_head_label_opens_it_too(page, base_url, seeded):
    graph = open_graph(page, base_url, seeded.circuits[0])
    label = page.locator(f"#{graph} .scatterlayer .textpoint text", has_text="a0.h1")
    box = label.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2)
    page.wait_for_url(f"**/heads?run={seeded.compare}&head=a0.h1")
    page.locator("#heads-detail-title", has_text="Head 0.1").wait_for()
    assert page.console.errors == []
