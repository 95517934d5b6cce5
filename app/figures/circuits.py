"""Circuit graphs, faithfulness curves and ROC curves.

Node names follow the project convention: ``input``, ``a{L}.h{H}`` (attention head), ``m{L}``
(MLP), ``logits``. Edge targets name the input channel: ``a{L}.h{H}<q|k|v>``, ``m{L}``,
``logits``; with grouped-query attention a head's key and value inputs are its KV head's,
``a{L}.kv{G}<k|v>``, and those edges end under the middle of the query heads that share KV head
G. The graph is drawn with layers top to bottom (input at the top, logits at the
bottom), heads left to right by index and each layer's MLP to the right of its heads, half a
row below. Edge width grows with ``|score|``; the q, k and v inputs of a head have their own
colour (Okabe-Ito) and end at the left, middle and right of the head's marker. Negative scores
are dashed.

Edge selection: ``top_k`` keeps the k edges with the largest ``|score|``; else ``threshold``
keeps ``|score| >= threshold``; else the edges marked ``in_circuit`` (all edges when none is
marked). At most ``max_edges`` edges are drawn, the largest first.
"""

from __future__ import annotations

import re

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


def _edge_traces(
    chosen: pd.DataFrame, pos: dict[str, tuple[float, float]], max_abs: float
) -> list[go.Scatter]:
    groups: dict[tuple[str, int, bool], tuple[list, list]] = {}
    for source, target, score in chosen[["source", "target", "score"]].itertuples(index=False):
        node, channel = split_target(target)
        x0, y0 = pos[source]
        x1, y1 = pos[node]
        strength = abs(score) / max_abs if max_abs > 0 else 0.0
        width_bin = min(len(WIDTH_BINS) - 1, int(strength * len(WIDTH_BINS)))
        xs, ys = groups.setdefault((channel, width_bin, score < 0), ([], []))
        xs += [x0, x1 + CHANNEL_OFFSET[channel], None]
        ys += [y0, y1, None]
    traces, shown = [], set()
    for (channel, width_bin, negative), (xs, ys) in sorted(groups.items()):
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line=dict(
                    color=CHANNEL_COLOURS[channel],
                    width=WIDTH_BINS[width_bin],
                    dash="dot" if negative else "solid",
                ),
                opacity=0.8,
                name=CHANNEL_NAMES[channel],
                legendgroup=channel,
                showlegend=channel not in shown,
                hoverinfo="skip",
            )
        )
        shown.add(channel)
    return traces


def _node_trace(names: list[str], pos: dict, scores: dict[str, float]) -> go.Scatter:
    return go.Scatter(
        x=[pos[n][0] for n in names],
        y=[pos[n][1] for n in names],
        mode="markers+text",
        text=names,
        textposition="middle right",
        textfont=dict(size=10),
        marker=dict(size=11, color="white", line=dict(color="#222222", width=1.2)),
        customdata=[scores.get(n, float("nan")) for n in names],
        hovertemplate="%{text}<br>score %{customdata:.4g}<extra></extra>",
        showlegend=False,
    )


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
    chosen = select_edges(edges_df, top_k=top_k, threshold=threshold, max_edges=max_edges)
    targets = {split_target(t)[0] for t in chosen["target"]}
    names = set(chosen["source"]) | {t for t in targets if not _KV.match(t)}
    if "in_circuit" in nodes_df.columns and not nodes_df.empty:
        names |= set(nodes_df.loc[nodes_df["in_circuit"].astype(bool), "name"])
    all_names = list(nodes_df.get("name", pd.Series(dtype=str))) + list(names)
    n_layers, n_heads = _extent(all_names)
    ordered = sorted(names, key=lambda n: node_position(n, n_layers, n_heads)[::-1])
    pos = {n: node_position(n, n_layers, n_heads) for n in ordered}
    pos |= kv_positions(edges_df["target"], n_heads)
    scores = dict(zip(nodes_df.get("name", []), nodes_df.get("score", []), strict=False))
    max_abs = float(chosen["score"].abs().max()) if not chosen.empty else 0.0
    fig = go.Figure([*_edge_traces(chosen, pos, max_abs), _node_trace(ordered, pos, scores)])
    light_layout(fig, aspect=min(1.4, max(0.6, (n_layers + 2) / (n_heads + 2))), title=title)
    fig.update_xaxes(visible=False, range=[-0.8, n_heads + 1.2])
    fig.update_yaxes(
        title_text="layer",
        autorange="reversed",
        showgrid=False,
        tickmode="array",
        tickvals=list(range(n_layers)),
        zeroline=False,
    )
    fig.update_yaxes(showline=False)
    fig.update_layout(
        legend=dict(
            orientation="h",
            y=-0.02,
            yanchor="top",
            x=0,
            font_size=10,
            itemwidth=30,
            title_text="edge into",
        )
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
