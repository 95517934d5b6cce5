"""Circuit graphs, faithfulness curves and ROC curves.

Node names follow the project convention: ``input``, ``a{L}.h{H}`` (attention head), ``m{L}``
(MLP), ``logits``. Edge targets name the input channel: ``a{L}.h{H}<q|k|v>``, ``m{L}``,
``logits``; with grouped-query attention a head's key and value inputs are its KV head's,
``a{L}.kv{G}<k|v>``, and those edges end under the middle of the query heads that share KV head
G. The graph is drawn with layers top to bottom (input at the top, logits at the
bottom), heads left to right by index and each layer's MLP to the right of its heads, half a
row below. Edge width grows with ``|score|``; the q, k and v inputs of a head have their own
colour (Okabe-Ito) and end at the left, middle and right of the head's marker. Negative scores
are dotted. The legend says what colour (input channel), line style (sign) and width
(``|score|``) mean, with entries of their own (the edge traces have none). Hovering an edge's
midpoint (an invisible marker: plotly hovers points, not lines) shows its source, target, score,
rank of ``|score|`` among all the run's edges and whether the stored circuit holds it. Each
node's label sits on the side of its marker that crosses the fewest drawn edges
(``label_layout``). ``link_heads`` makes head nodes open the Heads page when clicked.

Edge selection: ``top_k`` keeps the k edges with the largest ``|score|``; else ``threshold``
keeps ``|score| >= threshold``; else the edges marked ``in_circuit`` (all edges when none is
marked). At most ``max_edges`` edges are drawn, the largest first.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.circuits import select as circuit_select
from app.figures.style import CATEGORICAL, light_layout

_HEAD = re.compile(r"^a(\d+)\.h(\d+)$")
_MLP = re.compile(r"^m(\d+)$")
_KV = re.compile(r"^a(\d+)\.kv(\d+)$")  # a KV head's key/value input (grouped-query attention)
_TARGET = re.compile(r"^(.*?)(?:<([qkv])>)?$")
CHANNEL_COLOURS = {"q": CATEGORICAL[0], "k": CATEGORICAL[1], "v": CATEGORICAL[2], "": "#555555"}
CHANNEL_NAMES = {"q": "query", "k": "key", "v": "value", "": "direct"}
# q/k/v edges into one head converge side by side under its marker instead of overlapping
CHANNEL_OFFSET = {"q": -0.1, "k": 0.0, "v": 0.1, "": 0.0}
WIDTH_BINS = (0.8, 1.6, 2.6, 4.0)
CHANNEL_ORDER = ("q", "k", "v", "")
LEGEND_CHANNEL = {"q": "→ query", "k": "→ key", "v": "→ value", "": "→ MLP / logits"}
# line style and width entries in a light grey: not the dark grey of MLP / logits inputs
LEGEND_POSITIVE, LEGEND_NEGATIVE = "score > 0", "score < 0 (dotted)"
LEGEND_WIDTH, LEGEND_GREY = "width ∝ |score|", "#aaaaaa"
LEGEND_ROOM = 0.25  # added to the export aspect (height / width): the legend's rows
HEAD_CLICK_HINT = "<br>click: this head on the Heads page"
NO_HEADS_RUN_HINT = "<br>(no heads run on this model to open)"
IN_STORED, NOT_IN_STORED = "in the stored circuit", "not in the stored circuit"
# what each trace is (``trace.meta``): read by the tests and by ``assets/circuit_graph.js``
EDGES, EDGE_HOVER, LEGEND, NODES = "edges", "edge-hover", "legend", "nodes"
# labels: plotly's text positions in order of preference, and the sizes used to keep them
# off the drawn edges (font 10: about 6 px a character, 12 px a line; markers 11 px)
LABEL_POSITIONS = (
    "middle right",
    "middle left",
    "top right",
    "top left",
    "bottom right",
    "bottom left",
    "top center",
    "bottom center",
)
# a label above or below its marker reads as the next row's: it costs about one crossed edge
LABEL_PENALTY = (0.0, 0.0, 0.75, 0.75, 0.75, 0.75, 1.0, 1.0)
LABEL_FONT, LABEL_MARKER, LABEL_CHAR_PX, LABEL_LINE_PX = 10, 11, 6.0, 12.0
LABEL_CLEARANCE_PX = 4.0  # a label closer than this to another marker covers it
NOMINAL_PLOT_PX = (520.0, 320.0)  # the plot area of a graph on a page card


def split_target(target: str) -> tuple[str, str]:
    """``"a1.h2<k>"`` → ``("a1.h2", "k")``; ``"m1"`` → ``("m1", "")``."""
    match = _TARGET.match(target)
    assert match is not None  # the pattern matches every string
    return match.group(1), match.group(2) or ""


def node_position(name: str, n_layers: int, n_heads: int) -> tuple[float, float]:
    """``(x, y)`` of a node; y grows downwards (the axis is reversed)."""
    if name == "input":
        return (n_heads - 1) / 2, -1.0
    if name == "logits":
        return (n_heads - 1) / 2, float(n_layers)
    if m := _HEAD.match(name):
        return float(m.group(2)), float(m.group(1))
    if m := _MLP.match(name):
        return float(n_heads), float(m.group(1)) + 0.5
    raise ValueError(f"unknown node name {name!r}: expected input, aL.hH, mL or logits")


def kv_positions(targets: pd.Series, n_heads: int) -> dict[str, tuple[float, float]]:
    """``(x, y)`` of every KV-head input ``a{L}.kv{G}`` among ``targets`` (all the run's edges,
    so every KV head is seen): under the middle of the query heads sharing KV head G."""
    groups = [m for t in targets.drop_duplicates() if (m := _KV.match(split_target(t)[0]))]
    if not groups:
        return {}
    per_kv = max(1, n_heads // (1 + max(int(m.group(2)) for m in groups)))
    return {
        m.group(0): (int(m.group(2)) * per_kv + (per_kv - 1) / 2, float(m.group(1))) for m in groups
    }


def select_edges(
    edges: pd.DataFrame, *, top_k: int | None, threshold: float | None, max_edges: int
) -> pd.DataFrame:
    """The edges to draw, largest ``|score|`` first: the top-k / threshold rule of
    ``analysis.circuits.select`` (one rule for the page, export and stored circuits), else the
    stored circuit (every edge if none is flagged); at most ``max_edges``."""
    stored = "in_circuit" in edges.columns and bool(edges["in_circuit"].any())
    if top_k is None and threshold is None and stored:
        edges = edges[edges["in_circuit"].astype(bool)]
    return circuit_select.select_edges(edges, top_k=top_k, threshold=threshold).head(max_edges)


def _extent(names: list[str]) -> tuple[int, int]:
    layers, heads = [0], [0]
    for name in names:
        if m := _HEAD.match(name):
            layers.append(int(m.group(1)) + 1)
            heads.append(int(m.group(2)) + 1)
        elif m := _MLP.match(name):
            layers.append(int(m.group(1)) + 1)
    return max(layers), max(max(heads), 1)


def edge_segments(chosen: pd.DataFrame, pos: dict[str, tuple[float, float]]) -> np.ndarray:
    """``[n, 4]`` (x0, y0, x1, y1) of each edge as drawn: from its source's marker to its
    target's, shifted left/right by the input channel (``CHANNEL_OFFSET``)."""
    out = np.empty((len(chosen), 4))
    targets = chosen["target"].tolist()  # lists: iterating arrow-backed columns is slow
    for i, (source, target) in enumerate(zip(chosen["source"].tolist(), targets, strict=True)):
        node, channel = split_target(target)
        (x0, y0), (x1, y1) = pos[source], pos[node]
        out[i] = (x0, y0, x1 + CHANNEL_OFFSET[channel], y1)
    return out


def _edge_traces(chosen: pd.DataFrame, segments: np.ndarray, max_abs: float) -> list[go.Scatter]:
    scores = chosen["score"].to_numpy(float)
    strength = np.abs(scores) / max_abs if max_abs > 0 else np.zeros(len(scores))
    bins = np.minimum(len(WIDTH_BINS) - 1, (strength * len(WIDTH_BINS)).astype(int))
    channels = [split_target(t)[1] for t in chosen["target"].tolist()]
    groups: dict[tuple[str, int, bool], list[int]] = {}
    for i, key in enumerate(zip(channels, bins.tolist(), (scores < 0).tolist(), strict=True)):
        groups.setdefault(key, []).append(i)
    traces = []
    for (channel, width_bin, negative), rows in sorted(groups.items()):
        # per edge: start, end, NaN (a gap); numpy arrays skip plotly's per-item validation
        xs = np.column_stack([segments[rows, 0], segments[rows, 2], np.full(len(rows), np.nan)])
        ys = np.column_stack([segments[rows, 1], segments[rows, 3], np.full(len(rows), np.nan)])
        traces.append(
            go.Scatter(
                x=xs.ravel(),
                y=ys.ravel(),
                mode="lines",
                line=dict(
                    color=CHANNEL_COLOURS[channel],
                    width=WIDTH_BINS[width_bin],
                    dash="dot" if negative else "solid",
                ),
                opacity=0.8,
                name=CHANNEL_NAMES[channel],
                showlegend=False,
                hoverinfo="skip",
                meta=EDGES,
            )
        )
    return traces


def _target_label(target: str) -> str:
    node, channel = split_target(target)
    return f"{node} ({CHANNEL_NAMES[channel]})" if channel else node


def _edge_hover_trace(chosen: pd.DataFrame, segments: np.ndarray, n_all: int) -> go.Scatter:
    """Invisible markers at the edges' midpoints that carry each edge's hover (plotly hovers
    points, not lines): ``text`` "source → target (channel)", ``customdata`` (score, rank of
    |score| among all ``n_all`` edges, 1 if the stored circuit holds the edge else 0) and
    ``hovertext`` saying whether it does. Numbers in one float array, strings in two lists:
    plotly copies a list of lists item by item, which a page pays on every slider step."""
    stored = chosen["stored"].to_numpy(bool)
    customdata = np.column_stack(
        [chosen["score"].to_numpy(float), chosen["rank"].to_numpy(float), stored.astype(float)]
    )
    text = [
        f"{source} → {_target_label(target)}"
        for source, target in zip(chosen["source"].tolist(), chosen["target"].tolist(), strict=True)
    ]
    return go.Scatter(
        x=(segments[:, 0] + segments[:, 2]) / 2,
        y=(segments[:, 1] + segments[:, 3]) / 2,
        mode="markers",
        marker=dict(size=10, color="rgba(0,0,0,0)"),
        text=text,
        hovertext=[IN_STORED if s else NOT_IN_STORED for s in stored.tolist()],
        customdata=customdata,
        hovertemplate="%{text}<br>score %{customdata[0]:.4g}<br>"
        f"rank %{{customdata[1]:d}} of {n_all} by |score|<br>%{{hovertext}}<extra></extra>",
        showlegend=False,
        meta=EDGE_HOVER,
    )


def _legend_traces(chosen: pd.DataFrame, max_abs: float) -> list[go.Scatter]:
    """Legend entries only (no points): colour = input channel, solid/dotted = sign of the
    score, width = |score|."""

    def entry(name: str, color: str, width: float, dash: str = "solid") -> go.Scatter:
        return go.Scatter(
            x=[None],
            y=[None],
            mode="lines",
            name=name,
            line=dict(color=color, width=width, dash=dash),
            hoverinfo="skip",
            meta=LEGEND,
        )

    channels = {split_target(t)[1] for t in chosen["target"].tolist()}
    out = [
        entry(LEGEND_CHANNEL[c], CHANNEL_COLOURS[c], 2.6) for c in CHANNEL_ORDER if c in channels
    ]
    out += [
        entry(LEGEND_POSITIVE, LEGEND_GREY, 2.0),
        entry(LEGEND_NEGATIVE, LEGEND_GREY, 2.0, "dot"),
        entry(f"{LEGEND_WIDTH} (max {max_abs:.3g})", LEGEND_GREY, WIDTH_BINS[-1]),
    ]
    return out


# per LABEL_POSITIONS entry: where the box starts, in label widths (x) and heights (y) from
# the marker's centre plus plotly's gap (sign of the gap): right of the marker starts at +gap
_PLACE = {"right": (0.0, 1), "left": (-1.0, -1), "center": (-0.5, 0)}
_PLACE_Y = {"top": (-1.0, -1), "bottom": (0.0, 1), "middle": (-0.5, 0)}


def label_boxes(
    x: float | np.ndarray,
    y: float | np.ndarray,
    size: tuple[float | np.ndarray, float | np.ndarray],
    gap: tuple[float, float],
) -> np.ndarray:
    """``[..., len(LABEL_POSITIONS), 4]`` (x0, x1, y0, y1) in data units of a label at each
    of ``LABEL_POSITIONS``, placed as plotly's ``textposition`` places it (y grows
    downwards): ``gap`` is plotly's offset of a label from its marker's centre. Scalars give
    one node's boxes, arrays (one entry per node) every node's."""
    x, y = np.asarray(x, float)[..., None], np.asarray(y, float)[..., None]
    w, h = np.asarray(size[0], float)[..., None], np.asarray(size[1], float)[..., None]
    fx, sx = _PLACE_ARRAYS[0], _PLACE_ARRAYS[1]
    fy, sy = _PLACE_ARRAYS[2], _PLACE_ARRAYS[3]
    x0 = x + fx * w + sx * gap[0]
    y0 = y + fy * h + sy * gap[1]
    return np.stack([x0, x0 + w, y0, y0 + h], axis=-1)


_PLACE_ARRAYS = np.array(
    [(*_PLACE[where.split()[1]], *_PLACE_Y[where.split()[0]]) for where in LABEL_POSITIONS],
    dtype=float,
).T  # rows: x factor, x gap sign, y factor, y gap sign; one column per position


def segments_crossing(
    segments: np.ndarray, boxes: np.ndarray, *, pairwise: bool = False
) -> np.ndarray:
    """``[n_boxes, n_segments]``: which segments (x0, y0, x1, y1) cross which boxes (x0, x1,
    y0, y1), by separating axes: the box's two and the segment's normal. ``pairwise``:
    ``[n]``, segment i against box i only."""
    bx0, bx1, by0, by1 = (boxes[:, i] if pairwise else boxes[:, i : i + 1] for i in range(4))
    x0, y0, x1, y1 = segments.T
    overlap = (
        (np.minimum(x0, x1) <= bx1)
        & (np.maximum(x0, x1) >= bx0)
        & (np.minimum(y0, y1) <= by1)
        & (np.maximum(y0, y1) >= by0)
    )
    dx, dy = x1 - x0, y1 - y0
    # the side of the segment's line each box corner lies on: all on one side = separated
    a, b = dx * (by0 - y0), dx * (by1 - y0)
    c, d = dy * (bx0 - x0), dy * (bx1 - x0)
    corners = (a - c, b - c, a - d, b - d)
    low = np.minimum(np.minimum(corners[0], corners[1]), np.minimum(corners[2], corners[3]))
    high = np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3]))
    return overlap & (low <= 0) & (high >= 0)


def _boxes_overlap(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``[n_boxes, n_others]``: which boxes overlap which others (both x0, x1, y0, y1)."""
    return (
        (boxes[:, None, 0] < others[None, :, 1])
        & (others[None, :, 0] < boxes[:, None, 1])
        & (boxes[:, None, 2] < others[None, :, 3])
        & (others[None, :, 2] < boxes[:, None, 3])
    )


def label_layout(
    names: list[str],
    pos: dict[str, tuple[float, float]],
    segments: np.ndarray,
    data_per_px: tuple[float, float],
) -> tuple[list[str], np.ndarray]:
    """Each node's label position (a plotly ``textposition``) and its box ``[n, 4]`` (x0, x1,
    y0, y1 in data units): the first of ``LABEL_POSITIONS`` that crosses the fewest drawn
    edges, other markers (or comes within ``LABEL_CLEARANCE_PX`` of one: twice as bad) and
    labels placed before it (twice as bad), where a place above or below the marker costs
    ``LABEL_PENALTY`` on top. The
    edge and marker costs of every node and position are computed at once; only the labels
    placed before a node are a loop."""
    n = len(names)
    sx, sy = data_per_px
    gap_px = LABEL_MARKER / 2 / 0.8 + 1  # plotly: a label starts this far from the centre
    gap = (gap_px * sx, gap_px * sy)
    mx = (LABEL_MARKER / 2 + LABEL_CLEARANCE_PX) * sx
    my = (LABEL_MARKER / 2 + LABEL_CLEARANCE_PX) * sy
    centres = np.array([pos[name] for name in names], dtype=float).reshape(-1, 2)
    widths = np.array([len(name) * LABEL_CHAR_PX * sx for name in names])
    boxes = label_boxes(centres[:, 0], centres[:, 1], (widths, np.full(n, LABEL_LINE_PX * sy)), gap)
    cost = np.tile(np.asarray(LABEL_PENALTY), (n, 1))
    if len(segments) and n:
        # (node, segment) pairs where the segment crosses the hull of the node's label boxes:
        # extents first (cheap), then the exact test on the pairs left
        hull = np.stack(
            [
                boxes[..., 0].min(1),
                boxes[..., 1].max(1),
                boxes[..., 2].min(1),
                boxes[..., 3].max(1),
            ],
            axis=1,
        )
        lo = np.minimum(segments[:, :2], segments[:, 2:])  # (min x, min y)
        hi = np.maximum(segments[:, :2], segments[:, 2:])
        node, seg = np.nonzero(
            (lo[None, :, 0] <= hull[:, 1:2])
            & (hi[None, :, 0] >= hull[:, 0:1])
            & (lo[None, :, 1] <= hull[:, 3:4])
            & (hi[None, :, 1] >= hull[:, 2:3])
        )
        crossing = segments_crossing(segments[seg], hull[node], pairwise=True)
        node, seg = node[crossing], seg[crossing]
        for k in range(len(LABEL_POSITIONS)):
            hit = segments_crossing(segments[seg], boxes[node, k], pairwise=True)
            cost[:, k] += np.bincount(node[hit], minlength=n)
    markers = np.column_stack(
        [centres[:, 0] - mx, centres[:, 0] + mx, centres[:, 1] - my, centres[:, 1] + my]
    )
    covered = _boxes_overlap(boxes.reshape(-1, 4), markers).reshape(n, len(LABEL_POSITIONS), n)
    covered[np.arange(n), :, np.arange(n)] = False  # its own marker: never under its label
    cost += 2 * covered.sum(axis=2)
    where_out: list[str] = []
    placed = np.empty((n, 4))
    for i in range(n):
        total = cost[i] + 2 * _boxes_overlap(boxes[i], placed[:i]).sum(axis=1)
        best = int(np.argmin(total))  # the first of the cheapest: order of preference
        where_out.append(LABEL_POSITIONS[best])
        placed[i] = boxes[i, best]
    return where_out, placed


def _node_trace(
    names: list[str], pos: dict, scores: dict[str, float], where: list[str]
) -> go.Scatter:
    return go.Scatter(
        x=[pos[n][0] for n in names],
        y=[pos[n][1] for n in names],
        mode="markers+text",
        text=names,
        textposition=where,
        textfont=dict(size=LABEL_FONT),
        marker=dict(size=LABEL_MARKER, color="white", line=dict(color="#222222", width=1.2)),
        customdata=[[scores.get(n, float("nan")), ""] for n in names],
        hovertemplate="%{text}<br>score %{customdata[0]:.4g}%{customdata[1]}<extra></extra>",
        showlegend=False,
        meta=NODES,
    )


def link_heads(figure: dict[str, Any], href: str | None) -> dict[str, Any]:
    """A copy of a circuit graph's plotly JSON whose head nodes open ``href`` (``{node}`` is
    replaced by the node name, e.g. ``/heads?run=3&head={node}``) when clicked: the link rides
    in ``layout.meta.head_link`` (read by ``assets/circuit_graph.js``) and the heads' hover
    says so. ``href=None``: no link, and the hover says why."""
    hint = HEAD_CLICK_HINT if href else NO_HEADS_RUN_HINT
    data = []
    for trace in figure.get("data", []):
        if trace.get("meta") == NODES:
            trace = dict(trace)
            trace["customdata"] = [
                [row[0], hint if _HEAD.match(str(name)) else ""]
                for row, name in zip(trace["customdata"], trace["text"], strict=True)
            ]
        data.append(trace)
    layout = dict(figure.get("layout", {}))
    layout["meta"] = {**(layout.get("meta") or {}), "head_link": href}
    return {**figure, "data": data, "layout": layout}


def circuit_graph(
    edges_df: pd.DataFrame,
    nodes_df: pd.DataFrame,
    *,
    top_k: int | None = None,
    threshold: float | None = None,
    max_edges: int = 2000,
    title: str | None = None,
) -> go.Figure:
    """The circuit as a layered graph (``edges_df``: source, target, score, in_circuit;
    ``nodes_df``: name, layer, head, score, in_circuit)."""
    stored = (
        edges_df["in_circuit"].astype(bool)
        if "in_circuit" in edges_df.columns
        else pd.Series(False, index=edges_df.index)
    )
    order = edges_df["score"].abs().sort_values(ascending=False, kind="stable").index
    ranked = edges_df.assign(
        rank=pd.Series(np.arange(1, len(order) + 1), index=order), stored=stored
    )
    chosen = select_edges(ranked, top_k=top_k, threshold=threshold, max_edges=max_edges)
    targets = {split_target(t)[0] for t in chosen["target"].tolist()}
    names = set(chosen["source"].tolist()) | {t for t in targets if not _KV.match(t)}
    if "in_circuit" in nodes_df.columns and not nodes_df.empty:
        names |= set(nodes_df.loc[nodes_df["in_circuit"].astype(bool), "name"])
    all_names = list(nodes_df.get("name", pd.Series(dtype=str))) + list(names)
    n_layers, n_heads = _extent(all_names)
    ordered = sorted(names, key=lambda n: node_position(n, n_layers, n_heads)[::-1])
    pos = {n: node_position(n, n_layers, n_heads) for n in ordered}
    pos |= kv_positions(edges_df["target"], n_heads)
    scores = dict(zip(nodes_df.get("name", []), nodes_df.get("score", []), strict=False))
    max_abs = float(chosen["score"].abs().max()) if not chosen.empty else 0.0
    segments = edge_segments(chosen, pos)
    x_range = (-0.8, n_heads + 1.2)
    where, _ = label_layout(ordered, pos, segments, data_per_px(n_layers, n_heads))
    traces = [*_edge_traces(chosen, segments, max_abs)]
    if not chosen.empty:
        traces += [_edge_hover_trace(chosen, segments, len(edges_df))]
        traces += _legend_traces(chosen, max_abs)
    fig = go.Figure([*traces, _node_trace(ordered, pos, scores, where)])
    aspect = min(1.4, max(0.6, (n_layers + 2) / (n_heads + 2))) + LEGEND_ROOM
    light_layout(fig, aspect=aspect, title=title)
    fig.update_layout(  # one update: each plotly update call costs milliseconds
        xaxis=dict(visible=False, range=list(x_range)),
        yaxis=dict(
            title_text="layer",
            autorange="reversed",
            showgrid=False,
            tickmode="array",
            tickvals=list(range(n_layers)),
            zeroline=False,
            showline=False,
        ),
        hovermode="closest",
        legend=dict(orientation="h", y=-0.02, yanchor="top", x=0, font_size=10),
    )
    if chosen.empty:
        fig.add_annotation(
            text="no edge passes the selection",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
    return fig


def data_per_px(n_layers: int, n_heads: int) -> tuple[float, float]:
    """Data units per pixel of the graph on a page card (``NOMINAL_PLOT_PX``): the x range
    is fixed, the y axis spans the input row to the logits row plus plotly's padding."""
    width, height = NOMINAL_PLOT_PX
    return (n_heads + 2.0) / width, (n_layers + 1.3) / height


def faithfulness_curves(curves: dict[str, dict], *, title: str | None = None) -> go.Figure:
    """Faithfulness against the number of edges kept, one line per method.

    Each curve is ``{"k": [...], "faithfulness": [...], "area": x}`` (``area`` optional).
    """
    fig = go.Figure()
    for i, (name, curve) in enumerate(curves.items()):
        k, faith = np.asarray(curve["k"], float), np.asarray(curve["faithfulness"], float)
        if k.shape != faith.shape:
            raise ValueError(f"curve {name!r}: k and faithfulness differ in length")
        label = f"{name} (area {curve['area']:.3g})" if "area" in curve else name
        fig.add_scatter(
            x=k,
            y=faith,
            mode="lines+markers",
            name=label,
            line=dict(color=CATEGORICAL[i % len(CATEGORICAL)], width=1.8),
            marker=dict(size=4),
            hovertemplate="%{x} edges<br>faithfulness %{y:.3f}<extra></extra>",
        )
    fig.add_hline(y=1.0, line=dict(color="#888888", width=1, dash="dash"))
    fig.add_hline(y=0.0, line=dict(color="#bbbbbb", width=1, dash="dot"))
    light_layout(fig, aspect=0.62, title=title)
    fig.update_xaxes(title_text="edges kept", showgrid=True, gridcolor="#eeeeee")
    fig.update_yaxes(title_text="faithfulness", showgrid=True, gridcolor="#eeeeee")
    fig.update_layout(
        legend=dict(
            x=0.98, xanchor="right", y=0.02, yanchor="bottom", bgcolor="rgba(255,255,255,0.8)"
        )
    )
    return fig


def roc_curves(rocs: dict[str, dict], *, title: str | None = None) -> go.Figure:
    """ROC curves against a ground-truth circuit: ``{name: {"fpr", "tpr", "auc"}}``."""
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        name="chance",
        line=dict(color="#aaaaaa", width=1, dash="dash"),
        hoverinfo="skip",
    )
    for i, (name, roc) in enumerate(rocs.items()):
        fpr, tpr = np.asarray(roc["fpr"], float), np.asarray(roc["tpr"], float)
        if fpr.shape != tpr.shape:
            raise ValueError(f"ROC {name!r}: fpr and tpr differ in length")
        label = f"{name} (AUC {roc['auc']:.3f})" if "auc" in roc else name
        fig.add_scatter(
            x=fpr,
            y=tpr,
            mode="lines",
            name=label,
            line=dict(color=CATEGORICAL[i % len(CATEGORICAL)], width=1.8),
            hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra></extra>",
        )
    light_layout(fig, aspect=0.9, title=title)
    fig.update_xaxes(title_text="false positive rate", range=[-0.01, 1.01], constrain="domain")
    fig.update_yaxes(
        title_text="true positive rate", range=[-0.01, 1.01], scaleanchor="x", constrain="domain"
    )
    fig.update_layout(
        legend=dict(
            x=0.98, xanchor="right", y=0.02, yanchor="bottom", bgcolor="rgba(255,255,255,0.8)"
        )
    )
    return fig
