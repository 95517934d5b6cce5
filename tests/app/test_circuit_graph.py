"""The circuit graph's interactions: hover points at edge midpoints, a legend for colour, line
style and width, labels beside their nodes off the edges, head nodes linking to the Heads page
(the figure, the callback's JSON and the service that finds the heads run)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io
import pytest

from app.callbacks import circuits as circuit_callbacks
from app.figures import circuits
from app.services import circuits as circuit_service
from app.services.context import WebContext
from storage.settings import load_settings
from tests.browser.seeding import seed_all

COLUMNS = ["source", "target", "score", "in_circuit"]
EDGES = pd.DataFrame(
    [
        ("input", "a0.h1<q>", 0.5, True),
        ("a0.h1", "a1.h2<k>", 1.2, True),
        ("input", "a1.h2<v>", -0.8, False),
        ("a1.h2", "logits", 2.0, True),
        ("a0.h0", "logits", 0.05, False),
    ],
    columns=COLUMNS,
)
NODES = pd.DataFrame(
    [("a0.h1", 0, 1, 0.5, True), ("a1.h2", 1, 2, 2.0, True), ("a0.h0", 0, 0, 0.1, False)],
    columns=["name", "layer", "head", "score", "in_circuit"],
)


def traces(fig, role: str) -> list:
    return [t for t in fig.data if t.meta == role]


def test_every_drawn_edge_has_a_hover_point_at_its_midpoint_with_score_rank_and_membership():
    fig = circuits.circuit_graph(EDGES, NODES, top_k=3)
    (hover,) = traces(fig, circuits.EDGE_HOVER)
    # top 3 by |score| of all 5 edges, strongest first; rank among all the run's edges
    assert list(hover.text) == ["a1.h2 → logits", "a0.h1 → a1.h2 (key)", "input → a1.h2 (value)"]
    assert hover.customdata.tolist() == [[2.0, 1, 1], [1.2, 2, 1], [-0.8, 3, 0]]
    # membership is the stored circuit's, not the top-k selection's
    assert list(hover.hovertext) == [
        circuits.IN_STORED,
        circuits.IN_STORED,
        circuits.NOT_IN_STORED,
    ]
    assert "rank %{customdata[1]:d} of 5 by |score|" in hover.hovertemplate
    assert "%{text}<br>score %{customdata[0]:.4g}" in hover.hovertemplate
    assert "%{hovertext}" in hover.hovertemplate
    assert hover.marker.color == "rgba(0,0,0,0)" and hover.showlegend is False
    # the midpoint of each edge as drawn (q/k/v ends shifted by their channel offset)
    nodes = fig.data[-1]
    pos = dict(zip(nodes.text, zip(nodes.x, nodes.y, strict=True), strict=True))
    x1 = pos["a1.h2"][0] + circuits.CHANNEL_OFFSET["k"]
    assert hover.x[1] == pytest.approx((pos["a0.h1"][0] + x1) / 2)
    assert hover.y[1] == pytest.approx((pos["a0.h1"][1] + pos["a1.h2"][1]) / 2)
    # every drawn line (start, end, gap in each trace) has its hover point at its middle
    middles = {
        (round((t.x[i] + t.x[i + 1]) / 2, 9), round((t.y[i] + t.y[i + 1]) / 2, 9))
        for t in traces(fig, circuits.EDGES)
        for i in range(0, len(t.x), 3)
    }
    assert middles == {(round(x, 9), round(y, 9)) for x, y in zip(hover.x, hover.y, strict=True)}


def test_ties_rank_in_stored_order_as_top_k_keeps_them():
    edges = pd.DataFrame(
        [("input", "a0.h0<q>", -1.0, False), ("input", "a0.h1<q>", 1.0, False)], columns=COLUMNS
    )
    fig = circuits.circuit_graph(edges, NODES.iloc[:0], top_k=1)
    (hover,) = traces(fig, circuits.EDGE_HOVER)
    assert list(hover.text) == ["input → a0.h0 (query)"]
    assert hover.customdata.tolist() == [[-1.0, 1, 0]]


def test_legend_explains_colour_line_style_and_width_and_edges_stay_out_of_it():
    fig = circuits.circuit_graph(EDGES, NODES, top_k=5)
    assert all(t.showlegend is False for t in traces(fig, circuits.EDGES))
    legend = {t.name: t.line for t in traces(fig, circuits.LEGEND)}
    assert set(legend) == {
        "→ query",
        "→ key",
        "→ value",
        "→ MLP / logits",
        circuits.LEGEND_POSITIVE,
        circuits.LEGEND_NEGATIVE,
        f"{circuits.LEGEND_WIDTH} (max 2)",
    }
    assert legend[circuits.LEGEND_NEGATIVE].dash == "dot"
    assert legend[circuits.LEGEND_POSITIVE].dash == "solid"
    assert legend["→ key"].color == circuits.CHANNEL_COLOURS["k"]
    assert legend[f"{circuits.LEGEND_WIDTH} (max 2)"].width == max(circuits.WIDTH_BINS)
    # the style entries are no channel's colour
    assert legend[circuits.LEGEND_NEGATIVE].color not in circuits.CHANNEL_COLOURS.values()
    # entries only: no points, no hover
    assert all(list(t.x) == [None] for t in traces(fig, circuits.LEGEND))
    # only the channels drawn get a colour entry
    only_q = circuits.circuit_graph(EDGES.iloc[:1], NODES)
    names = [t.name for t in traces(only_q, circuits.LEGEND)]
    assert "→ query" in names and "→ key" not in names
    assert circuits.LEGEND_NEGATIVE in names  # the line style is explained all the same


def test_segments_crossing_matches_sampled_points():
    rng = np.random.default_rng(0)
    segments = rng.uniform(0, 10, size=(400, 4))
    boxes = np.array([[4.0, 6.0, 4.0, 5.0], [0.0, 1.0, 9.0, 10.0], [2.0, 8.0, 2.0, 2.5]])
    hit = circuits.segments_crossing(segments, boxes)
    t = np.linspace(0, 1, 4001)[:, None]
    for b, (x0, x1, y0, y1) in enumerate(boxes):
        xs = segments[:, 0] + t * (segments[:, 2] - segments[:, 0])
        ys = segments[:, 1] + t * (segments[:, 3] - segments[:, 1])
        sampled = ((xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)).any(axis=0)
        # sampling can miss a corner clip, never invent one
        assert not (sampled & ~hit[b]).any()
        assert (hit[b] & ~sampled).sum() <= 2
        assert sampled.sum() > 5


def test_a_label_moves_to_the_first_side_no_edge_crosses():
    scale = circuits.data_per_px(2, 4)
    pos = {"a0.h1": (1.0, 0.0)}
    right = [1.0, 0.0, 3.0, 0.0]  # a level line from the marker to the right
    left = [-1.0, 0.0, 1.0, 0.0]  # and to the left
    up_right = [1.0, -1.0, 1.2, 0.0]  # a line from above into the marker's right side
    for segments, expected in (
        ([], "middle right"),
        ([right], "middle left"),
        ([right, left], "top right"),
        ([right, left, up_right], "top left"),
    ):
        segs = np.array(segments, dtype=float).reshape(-1, 4)
        where, boxes = circuits.label_layout(["a0.h1"], pos, segs, scale)
        assert where == [expected]
        assert not circuits.segments_crossing(segs, boxes).any()
        # the label box sits beside the marker, never on its centre
        x0, x1, y0, y1 = boxes[0]
        assert not (x0 <= 1.0 <= x1 and y0 <= 0.0 <= y1)


def test_a_label_never_covers_another_marker_or_label():
    scale = circuits.data_per_px(1, 2)
    w = 5 * circuits.LABEL_CHAR_PX * scale[0]
    pos = {"a0.h0": (0.0, 0.0), "a0.h1": (w * 0.8, 0.0)}  # closer than a label's width
    where, boxes = circuits.label_layout(list(pos), pos, np.empty((0, 4)), scale)
    assert where[0] != "middle right"  # it would cover a0.h1's marker
    (a, b) = boxes
    assert not (a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3])


def test_labels_of_a_dense_circuit_cross_fewer_edges_than_labels_all_on_the_right():
    from tests.browser.seeding import circuit_output

    out = circuit_output("eap", 0)
    edges = pd.DataFrame([(e.source, e.target, e.score, e.in_circuit) for e in out.edges],
                         columns=COLUMNS)  # fmt: skip
    fig = circuits.circuit_graph(edges, NODES.iloc[:0], top_k=20)
    nodes = fig.data[-1]
    names = list(nodes.text)
    pos = {n: (x, y) for n, x, y in zip(names, nodes.x, nodes.y, strict=True)}
    chosen = circuits.select_edges(edges, top_k=20, threshold=None, max_edges=2000)
    segments = circuits.edge_segments(chosen, pos)
    scale = circuits.data_per_px(2, 4)
    where, boxes = circuits.label_layout(names, pos, segments, scale)
    assert where == list(nodes.textposition)
    gap_px = circuits.LABEL_MARKER / 2 / 0.8 + 1
    crossed, right_crossed = 0, 0
    for name, box in zip(names, boxes, strict=True):
        size = (len(name) * circuits.LABEL_CHAR_PX * scale[0], circuits.LABEL_LINE_PX * scale[1])
        every = circuits.label_boxes(*pos[name], size, (gap_px * scale[0], gap_px * scale[1]))
        per_position = circuits.segments_crossing(segments, every).sum(axis=1)
        here = int(circuits.segments_crossing(segments, box[None]).sum())
        # at most one edge more than the best side crosses (a side costs at most one edge)
        assert here <= per_position.min() + 1
        crossed += here
        right_crossed += int(per_position[0])
    assert crossed < right_crossed and crossed <= 2


def test_link_heads_marks_head_nodes_and_leaves_the_cached_figure_alone():
    figure = circuits.circuit_graph(EDGES, NODES).to_plotly_json()
    before = plotly.io.to_json(copy.deepcopy(figure))
    linked = circuits.link_heads(figure, "/heads?run=7&head={node}")
    assert plotly.io.to_json(figure) == before  # page figures are memoised: the copy is new
    assert linked["layout"]["meta"]["head_link"] == "/heads?run=7&head={node}"
    assert linked["layout"]["meta"]["aspect"] == figure["layout"]["meta"]["aspect"]
    (nodes,) = [t for t in linked["data"] if t.get("meta") == circuits.NODES]
    hints = dict(zip(nodes["text"], (row[1] for row in nodes["customdata"]), strict=True))
    assert hints["a0.h1"] == hints["a1.h2"] == circuits.HEAD_CLICK_HINT
    assert hints["input"] == hints["logits"] == ""
    unlinked = circuits.link_heads(figure, None)
    (nodes,) = [t for t in unlinked["data"] if t.get("meta") == circuits.NODES]
    assert unlinked["layout"]["meta"]["head_link"] is None
    assert circuits.NO_HEADS_RUN_HINT in [row[1] for row in nodes["customdata"]]


@pytest.fixture
def seeded(store):
    settings = load_settings()
    return WebContext.open(settings, store), seed_all(store, Path(settings.home) / "work")


def test_circuits_page_graph_links_its_heads_to_the_heads_run_of_its_model(seeded):
    ctx, s = seeded
    run = s.circuits[0]
    # seed_all's newest heads run with patterns on the circuit's model and prompt set
    assert circuit_service.heads_link(ctx.reader, run) == f"/heads?run={s.compare}&head={{node}}"
    cards, _ = circuit_callbacks.show_circuits(ctx, [run], "topk", 5, 0.0)
    figure = cards[0].children[1].figure
    assert figure["layout"]["meta"]["head_link"] == f"/heads?run={s.compare}&head={{node}}"
    kinds = [t.get("meta") for t in figure["data"]]
    assert circuits.EDGE_HOVER in kinds and kinds[-1] == circuits.NODES
