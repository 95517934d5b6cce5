"""What a page load fetches: the cartesian plotly.js from assets (never plotly's full bundle),
the regenerator runtime instead of the ES2017 polyfill,
the graph and dropdown chunks as cached scripts, preloads of the layout and the callback graph,
year-long caching of fingerprinted assets, and the first page built into the layout from the
``Referer`` (no router round trip)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app import ids
from app.web import create_app
from storage.settings import load_settings
from tests.browser.seeding import seed_all


@pytest.fixture
def client(store):
    return create_app(load_settings(), store).server.test_client()


def test_index_loads_the_cartesian_bundle_and_preloads_the_layout(client):
    html = client.get("/heads").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert any("/assets/plotly-cartesian.min.js?m=" in s for s in scripts)
    assert any("/assets/components.js?m=" in s for s in scripts)  # headlab's components
    assert not any("package_data/plotly" in s for s in scripts)  # plotly's 4.8 MB bundle
    assert any(re.search(r"dcc/async-graph\.v[\w.]+\.js$", s) for s in scripts)  # fingerprinted
    assert not any("async-mathjax" in s or "async-markdown" in s for s in scripts)
    assert '<link rel="preload" href="/_dash-layout" as="fetch"' in html
    assert '<link rel="preload" href="/_dash-dependencies" as="fetch"' in html
    asset = next(s for s in scripts if "plotly-cartesian" in s)
    response = client.get(asset)
    assert response.status_code == 200 and response.cache_control.max_age == 365 * 24 * 3600
    assert b"plotly.js (cartesian - minified)" in response.data[:200]  # its licence header
    assert client.get("/assets/keys.js").cache_control.max_age is None  # not fingerprinted


def test_index_loads_the_regenerator_runtime_instead_of_the_polyfill(client):
    html = client.get("/heads").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert not any("polyfill" in s for s in scripts)
    names = [s.split("?")[0].rsplit("/", 1)[-1] for s in scripts]
    runtime = names.index("regenerator-runtime.js")
    assert runtime < next(i for i, n in enumerate(names) if n.startswith("dash_renderer"))
    assert "regeneratorRuntime" in client.get(scripts[runtime]).get_data(as_text=True)


def test_cartesian_bundle_matches_plotly_pythons_version():
    """Upgrading plotly: fetch the same version (docs/ui.md, Speed)."""
    import plotly

    full = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    ours = Path(__file__).resolve().parents[2] / "assets" / "plotly-cartesian.min.js"
    version = re.compile(r"plotly\.js(?: \(cartesian - minified\))? (v[\d.]+)")
    with full.open() as a, ours.open() as b:
        assert version.search(a.read(300)).group(1) == version.search(b.read(300)).group(1)


def page_of(layout: dict) -> tuple[object, object]:
    """(page-url store data, page container children) of a served layout."""
    found: dict[str, object] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") == ids.PAGE_URL:
                found["url"] = props.get("data")
            if props.get("id") == ids.PAGE:
                found["page"] = props.get("children")
            walk(props.get("children"))
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(layout)
    return found["url"], found["page"]


def test_layout_carries_the_referring_page(store, tmp_path):
    seeded = seed_all(store, tmp_path / "seed")
    client = create_app(load_settings(), store).server.test_client()
    url = f"/heads?run={seeded.heads}&metric=entropy"
    layout = json.loads(
        client.get("/_dash-layout", headers={"Referer": f"http://localhost{url}"}).data
    )
    shown, page = page_of(layout)
    assert shown == url
    assert "heads-heatmap" in json.dumps(page) and "entropy" in json.dumps(page)
    # unknown referrer (or another site): an empty page that the router fills in
    for headers in ({}, {"Referer": "http://elsewhere.example/heads"}):
        shown, page = page_of(json.loads(client.get("/_dash-layout", headers=headers).data))
        assert shown is None and page is None
