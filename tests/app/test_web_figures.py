"""Page figures: the pattern fast path equals the builder's figure for every head and prompt,
and the Heads page's figures skip plotly's automargin pass (fixed margins that fit)."""

from __future__ import annotations

import plotly.io as pio

from app.figures.style import label_room
from app.services.context import WebContext
from app.services.figures import build_figure, page_figure, pattern_for_head
from storage.settings import load_settings
from tests.browser.seeding import seed_all


def test_pattern_fast_path_equals_builder(store, tmp_path):
    seeded = seed_all(store, tmp_path / "seed")
    ctx = WebContext.open(load_settings(), store)
    run = seeded.heads

    def exact(prompt: int, layer: int, head: int) -> dict:
        spec = {"kind": "pattern", "run": run, "layer": layer, "head": head, "prompt": prompt}
        return build_figure(ctx.reader, spec).to_plotly_json()

    for prompt in (0, 1, 2):
        first = exact(prompt, 0, 0)
        for layer, head in [(1, 3), (0, 2), (1, 1), (0, 0)]:
            matrix, _ = ctx.reader.pattern(run, prompt, layer, head)
            fast = pattern_for_head(first, matrix, layer, head)
            assert fast is not None, "the fast path must apply to the builder's own figures"
            want = pio.to_json(exact(prompt, layer, head), validate=False)
            assert pio.to_json(fast, validate=False) == want, (prompt, layer, head)
            spec = {"kind": "pattern", "run": run, "layer": layer, "head": head, "prompt": prompt}
            assert pio.to_json(page_figure(ctx.reader, spec), validate=False) == want
    other_prompt, _ = ctx.reader.pattern(run, 2, 0, 0)  # 9 tokens, the first figure has 8
    assert pattern_for_head(exact(0, 0, 0), other_prompt, 0, 0) is None


def test_heads_heatmap_and_pattern_have_no_automargin(store, tmp_path):
    seeded = seed_all(store, tmp_path / "seed")
    ctx = WebContext.open(load_settings(), store)
    heatmap = build_figure(
        ctx.reader, {"kind": "head_heatmap", "run": seeded.heads, "metric": "induction_score"}
    )
    pattern = build_figure(
        ctx.reader, {"kind": "pattern", "run": seeded.heads, "layer": 1, "head": 2, "prompt": 0}
    )
    for fig in (heatmap, pattern):
        assert fig.layout.xaxis.automargin is False and fig.layout.yaxis.automargin is False
    labels = list(pattern.layout.xaxis.ticktext)
    assert pattern.layout.margin.l == pattern.layout.margin.b == label_room(labels)


def test_label_room_grows_with_the_widest_label():
    assert label_room(["a", "b"], least=60) == 60  # the floor
    assert label_room(["&lt;|endoftext|&gt;"]) > label_room(["<bos>"])  # entities count once
    assert label_room(["漢字漢字"]) > label_room(["abcd"])  # wide characters count double
