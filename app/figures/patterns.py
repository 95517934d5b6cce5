"""Attention-pattern heatmaps: one head's attention of each query position over key positions.

``pattern[q, k]`` is the attention weight of query position ``q`` on key position ``k`` (rows
sum to 1 under causal attention, upper triangle 0), as stored in ``patterns.safetensors``.
Query tokens run down the y axis (first token at the top), key tokens along x, on the
sequential ``Blues`` scale from 0 to 1. Duplicate tokens stay separate because the axes are
positions labelled with token text, not categories. Token labels are drawn while they are
legible (≤ 64 tokens); hover text carries the tokens up to 256 positions, positions beyond.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.figures.style import (
    SEQUENTIAL_SCALE,
    colour_bar,
    escape_label,
    label_room,
    light_layout,
    tick_step,
)

MAX_LABELLED_TOKENS = 64
MAX_HOVER_TOKENS = 256


def _token_hover(labels: list[str], n: int) -> np.ndarray:
    """customdata ``[q, k, 2]``: the query and key token of each cell."""
    arr = np.asarray(labels, dtype=object)
    query = np.broadcast_to(arr[:, None], (n, n))
    key = np.broadcast_to(arr[None, :], (n, n))
    return np.stack([query, key], axis=-1)


def attention_pattern(
    pattern: np.ndarray,
    tokens: list[str],
    *,
    layer: int,
    head: int,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of one head's ``[query, key]`` attention pattern with token labels on both axes."""
    pattern = np.asarray(pattern, dtype=np.float32)
    if pattern.ndim != 2 or pattern.shape[0] != pattern.shape[1]:
        raise ValueError(f"pattern must be a square [query, key] array, got shape {pattern.shape}")
    n = pattern.shape[0]
    if len(tokens) != n:
        raise ValueError(f"{len(tokens)} tokens for a pattern over {n} positions")
    labels = [escape_label(t) for t in tokens]
    trace = go.Heatmap(
        z=pattern,
        x0=0,
        dx=1,
        y0=0,
        dy=1,
        zmin=0.0,
        zmax=1.0,
        colorscale=SEQUENTIAL_SCALE,
        colorbar=colour_bar("attention"),
    )
    if n <= MAX_HOVER_TOKENS:
        trace.customdata = _token_hover(labels, n)
        trace.hovertemplate = (
            "query %{y} %{customdata[0]}<br>key %{x} %{customdata[1]}<br>"
            "attention %{z:.3f}<extra></extra>"
        )
    else:
        trace.hovertemplate = "query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>"
    fig = go.Figure(trace)
    light_layout(fig, aspect=0.92, title=title or f"head {layer}.{head}")
    # margins fixed from the labels: no automargin redraw in the browser (export sets its own)
    fig.update_xaxes(title_text="key position", showgrid=False, automargin=False)
    fig.update_yaxes(
        title_text="query position", showgrid=False, autorange="reversed", automargin=False
    )
    if n <= MAX_LABELLED_TOKENS:
        ticks = dict(tickmode="array", tickvals=list(range(n)), ticktext=labels)
        fig.update_xaxes(title_text="key token", tickangle=-90, **ticks)
        fig.update_yaxes(title_text="query token", **ticks)
        room = label_room(labels)
        fig.update_layout(margin=dict(l=room, b=room))
    else:
        fig.update_xaxes(dtick=tick_step(n), tick0=0)
        fig.update_yaxes(dtick=tick_step(n), tick0=0)
    return fig
