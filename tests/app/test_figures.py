"""Pure figure builders: data lands in the right cells, scales follow the conventions, bad
input is refused, and big grids build cheaply. No Chromium needed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from app.figures import circuits, compare, heads, patterns, sae
from app.figures.style import colour_limits, escape_label, metric_is_signed


def head_frame(values: np.ndarray, metric: str = "dla") -> pd.DataFrame:
    n_layers, n_heads = values.shape
    return pd.DataFrame(
        {
            "metric": metric,
            "layer": np.repeat(np.arange(n_layers), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers),
            "position": None,
            "prompt": None,
            "value": values.ravel(),
        }
    )


def test_head_heatmap_layout_and_values():
    values = np.arange(12, dtype=float).reshape(3, 4) - 3.0
    fig = heads.head_heatmap(head_frame(values), "dla")
    trace = fig.data[0]
    assert isinstance(trace, go.Heatmap)
    np.testing.assert_array_equal(np.asarray(trace.z), values)  # z[layer, head]
    assert fig.layout.yaxis.autorange == "reversed"  # layer 0 at the top
    assert fig.layout.yaxis.title.text == "layer" and fig.layout.xaxis.title.text == "head"
    assert trace.zmin == -8.0 and trace.zmax == 8.0 and trace.zmid == 0.0  # symmetric
    assert trace.colorscale[0][1] == go.Heatmap(colorscale="RdBu").colorscale[0][1]
    for word in ("layer", "head", "dla"):
        assert word in trace.hovertemplate
    assert not fig.layout.annotations  # no per-cell text


def test_non_negative_scores_use_a_sequential_scale_from_zero():
    values = np.random.default_rng(0).random((2, 3))
    fig = heads.head_heatmap(head_frame(values, "induction_score"), "induction_score")
    trace = fig.data[0]
    assert trace.zmin == 0.0 and trace.zmax == pytest.approx(values.max())
    assert trace.colorscale[0][1] == go.Heatmap(colorscale="Blues").colorscale[0][1]
    assert metric_is_signed("patch_z", [0.1, 0.2])  # effects are signed by name
    assert not metric_is_signed("entropy", [0.1, 0.2])
    assert colour_limits(np.array([-1.0, 3.0]), True) == (-3.0, 3.0)


def test_heatmap_prefers_aggregate_rows_and_refuses_ambiguous_ones():
    agg = head_frame(np.ones((1, 2)), "m")
    per_prompt = agg.assign(prompt=0, value=5.0)
    mixed = pd.concat([agg, per_prompt])
    np.testing.assert_array_equal(heads.head_grid(mixed, "m"), np.ones((1, 2)))
    two_prompts = pd.concat([per_prompt, per_prompt.assign(prompt=1)])
    with pytest.raises(ValueError, match="one prompt"):
        heads.head_grid(two_prompts, "m")
    with pytest.raises(ValueError, match="no per-head rows for metric 'other'"):
        heads.head_heatmap(agg, "other")


def test_missing_heads_are_gaps_not_zeros():
    df = head_frame(np.ones((2, 2))).iloc[:3]
    grid = heads.head_grid(df, "dla")
    assert np.isnan(grid[1, 1]) and grid[0, 0] == 1.0


def test_70b_shaped_grid_builds_fast_without_per_cell_objects():
    values = np.random.default_rng(1).normal(size=(80, 64))
    start = time.perf_counter()
    fig = heads.head_heatmap(head_frame(values), "dla")
    assert time.perf_counter() - start < 2.0
    assert np.asarray(fig.data[0].z).shape == (80, 64)
    assert fig.layout.xaxis.dtick >= 4 and fig.layout.yaxis.dtick >= 5  # readable ticks


def test_position_heatmap_with_tokens():
    df = pd.DataFrame(
        [
            {"metric": "patch_resid", "layer": la, "head": None, "position": p, "value": la - p}
            for la in range(2)
            for p in range(3)
        ]
    )
    fig = heads.position_heatmap(df, "patch_resid", tokens=["<s>", " a", "b"])
    assert fig.layout.xaxis.title.text == "position"
    assert list(fig.layout.xaxis.ticktext) == ["&lt;s&gt;", "␣a", "b"]
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), [[0, -1, -2], [1, 0, -1]])
    # a prompt shorter than the grid labels its positions; the later ones keep their number
    short = heads.position_heatmap(df, "patch_resid", tokens=["a", "b"])
    assert list(short.layout.xaxis.ticktext) == ["a", "b", "2"]


def test_attention_pattern_keeps_duplicate_tokens_apart():
    tokens = ["a", "b", "a", "b"]
    pattern = np.tril(np.ones((4, 4)))
    pattern /= pattern.sum(1, keepdims=True)
    fig = patterns.attention_pattern(pattern, tokens, layer=1, head=2)
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2, 3]
    assert list(fig.layout.yaxis.ticktext) == tokens
    assert fig.layout.yaxis.autorange == "reversed"
    assert "customdata[0]" in fig.data[0].hovertemplate
    assert fig.data[0].zmin == 0 and fig.data[0].zmax == 1
    with pytest.raises(ValueError, match="3 tokens"):
        patterns.attention_pattern(pattern, tokens[:3], layer=0, head=0)
    with pytest.raises(ValueError, match="square"):
        patterns.attention_pattern(pattern[:2], tokens, layer=0, head=0)


def test_1024_token_pattern_builds_without_token_hover():
    n = 1024
    pattern = np.tril(np.ones((n, n), dtype=np.float32)) / np.arange(1, n + 1)[:, None]
    fig = patterns.attention_pattern(pattern, [f"t{i}" for i in range(n)], layer=0, head=0)
    assert fig.data[0].customdata is None
    assert fig.layout.xaxis.tickvals is None and fig.layout.xaxis.dtick >= 64


EDGES = pd.DataFrame(
    [
        ("input", "a0.h1<q>", 0.5, True),
        ("a0.h1", "a1.h2<k>", 1.2, True),
        ("input", "a1.h2<v>", -0.8, True),
        ("a1.h2", "logits", 2.0, True),
        ("m0", "logits", 0.05, False),
    ],
    columns=["source", "target", "score", "in_circuit"],
)
NODES = pd.DataFrame(
    [("a0.h1", 0, 1, 0.5, True), ("a1.h2", 1, 2, 2.0, True), ("m0", 0, None, 0.1, False)],
    columns=["name", "layer", "head", "score", "in_circuit"],
)


def test_circuit_graph_layers_top_to_bottom_and_channels_distinct():
    fig = circuits.circuit_graph(EDGES, NODES)
    nodes = fig.data[-1]
    pos = dict(zip(nodes.text, zip(nodes.x, nodes.y, strict=True), strict=True))
    assert pos["input"][1] < pos["a0.h1"][1] < pos["a1.h2"][1] < pos["logits"][1]
    assert "m0" not in pos  # not in the circuit by default
    assert fig.layout.yaxis.autorange == "reversed"
    edges = [t for t in fig.data if t.meta == circuits.EDGES]
    colours = {t.name: t.line.color for t in edges}
    assert len({colours["query"], colours["key"], colours["value"]}) == 3
    dashed = [t for t in edges if t.line.dash == "dot"]
    assert [t.name for t in dashed] == ["value"]  # the negative edge


def test_circuit_edge_selection():
    assert len(circuits.select_edges(EDGES, top_k=2, threshold=None, max_edges=99)) == 2
    kept = circuits.select_edges(EDGES, top_k=None, threshold=0.9, max_edges=99)
    assert set(kept["score"]) == {1.2, 2.0}
    assert len(circuits.select_edges(EDGES, top_k=None, threshold=None, max_edges=99)) == 4
    fig = circuits.circuit_graph(EDGES, NODES, threshold=99.0)
    assert "no edge" in fig.layout.annotations[0].text
    assert circuits.split_target("a3.h10<v>") == ("a3.h10", "v")
    with pytest.raises(ValueError, match="unknown node name"):
        circuits.node_position("x9", 2, 2)


def test_curves():
    fig = circuits.faithfulness_curves({"EAP": {"k": [1, 2], "faithfulness": [0.5, 1.0]}})
    assert fig.layout.xaxis.title.text == "edges kept" and fig.data[0].name == "EAP"
    rocs = {"edge": {"fpr": [0, 1], "tpr": [0, 1], "auc": 0.5}}
    fig = circuits.roc_curves(rocs)
    assert fig.data[1].name == "edge (AUC 0.500)"
    with pytest.raises(ValueError, match="differ in length"):
        circuits.roc_curves({"x": {"fpr": [0, 1], "tpr": [0]}})


def test_sae_figures_and_feature_table():
    curve = {"step": [0, 1, 2], "mse": [3, 2, 1], "l0": [9, 5, 4]}
    assert len(sae.training_curves(curve).data) == 2
    shares = pd.DataFrame(
        {"feature": 7, "layer": [0, 0, 1], "head": [0, 1, 0], "share": [0.2, 0.5, 0.3]}
    )
    bars = sae.head_share_bars(shares, 7, top_n=2)
    assert list(bars.data[0].x) == ["0.1", "1.0", "other (1)"]
    assert list(bars.data[0].y) == [0.5, 0.3, 0.2]
    with pytest.raises(ValueError, match="feature 8"):
        sae.head_share_bars(shares, 8)
    contexts = [
        {"tokens": ["a", "b"], "acts": [0.0, 2.0], "max": 2.0},
        {"tokens": ["c"], "acts": [1.0], "max": 1.0},
    ]
    fig = sae.top_contexts(contexts)
    assert np.isnan(np.asarray(fig.data[0].z, dtype=float)[1, 1])
    features = pd.DataFrame(
        {
            "feature": [0, 1],
            "frequency": [0.1, 0.3],
            "mean_act": [1.0, 2.0],
            "max_act": [2.0, 3.0],
            "dominant_head": ["0.1", "1.0"],
            "dominant_share": [0.9, 0.4],
            "n_heads_50": [1, 3],
        }
    )
    assert list(sae.feature_table(features)["feature"]) == [1, 0]
    with pytest.raises(ValueError, match="cannot sort by"):
        sae.feature_table(features, sort_by="nope")
    dfa = pd.DataFrame(
        {
            "feature": 1,
            "context": 0,
            "source_pos": [0, 1],
            "layer": 0,
            "head": [1, 1],
            "value": [0.5, -1.0],
        }
    )
    fig = sae.dfa_heatmap(dfa, 1, 0)
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), [[0.5, -1.0]])


def test_compare_side_by_side_and_difference():
    a, b = np.zeros((2, 3)), np.arange(6.0).reshape(2, 3)
    fig = compare.difference_heatmap(head_frame(a), head_frame(b), "dla")
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), b - a)
    side = compare.side_by_side(head_frame(a), head_frame(b), "dla")
    assert side.data[0].zmin == side.data[1].zmin == -5.0  # one shared scale
    with pytest.raises(ValueError, match="different head grids"):
        compare.difference_heatmap(head_frame(a), head_frame(np.zeros((3, 3))), "dla")


def test_escape_label():
    assert escape_label("<|endoftext|>") == "&lt;|endoftext|&gt;"
    assert escape_label(" the") == "␣the" and escape_label("\n") == "↵"
    assert escape_label("\x0f") == "\\x0f" and escape_label("a\x7fb") == "a\\x7fb"


def test_circuit_graph_of_a_gqa_model_ends_key_value_edges_under_their_kv_heads():
    # 2 layers × 4 query heads sharing 2 KV heads: a1.kv0 serves heads 0–1, a1.kv1 heads 2–3
    edges = pd.DataFrame(
        [
            ("a0.h1", "a1.kv0<k>", 1.0, True),
            ("a0.h3", "a1.kv1<v>", -0.5, True),
            ("input", "a1.h2<q>", 0.7, True),
            ("a1.h2", "logits", 2.0, True),
        ],
        columns=["source", "target", "score", "in_circuit"],
    )
    nodes = pd.DataFrame(
        [(f"a{layer}.h{head}", layer, head, 0.1, True) for layer in (0, 1) for head in range(4)],
        columns=["name", "layer", "head", "score", "in_circuit"],
    )
    fig = circuits.circuit_graph(edges, nodes)
    assert not any("kv" in name for name in fig.data[-1].text)  # a KV head is no node marker
    ends = {t.name: (t.x[1], t.y[1]) for t in fig.data if t.meta == circuits.EDGES}
    assert ends["key"] == (0.5, 1.0)  # the middle of heads 0 and 1
    assert ends["value"] == (2.5 + circuits.CHANNEL_OFFSET["v"], 1.0)
