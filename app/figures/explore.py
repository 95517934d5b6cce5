"""Figures of an ``explore`` run (one text, every head): pure builders, torch-free.

- ``thumbnail_png``: one head's ``[q, k]`` pattern as a small PNG (the ``Blues`` scale from 0
  to 1 as every pattern figure, max-pooled to at most ``THUMB_PX`` pixels a side), for the
  page's grid of every head; written with zlib, no imaging library;
- ``head_patterns``: every head's pattern in one figure, a layers × heads grid of small
  heatmaps (the grid's export);
- ``overlay``: several heads' attention from one query token over the keys, one colour per
  head (Okabe-Ito, then plotly's ``Dark24``);
- ``logit_lens``: per layer, the probability of each target next token read from the residual
  stream entering that layer (and the final one) through ``ln_final`` and ``unembed``.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from app.figures.style import (
    CATEGORICAL,
    SEQUENTIAL_SCALE,
    colour_bar,
    escape_label,
    label_room,
    light_layout,
    tick_step,
)

THUMB_PX = 96
# plotly's sequential Blues, the scale of every attention figure, as 0..1 stops
BLUES = np.array(
    [(247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
     (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107)],
    dtype=np.float64,
)  # fmt: skip
MAX_LABELLED_TOKENS = 64


def head_colour(i: int) -> str:
    """The overlay colour of the ``i``-th head drawn."""
    palette = list(CATEGORICAL[:-1]) + list(qualitative.Dark24)
    return palette[i % len(palette)]


def pooled(pattern: np.ndarray, size: int = THUMB_PX) -> np.ndarray:
    """``pattern`` max-pooled by the smallest integer factor that makes it at most ``size``
    pixels a side (a sharp one-key stripe stays visible in a thumbnail)."""
    n = pattern.shape[0]
    step = max(1, -(-n // size))
    if step == 1:
        return pattern
    pad = (-n) % step
    padded = np.pad(pattern, ((0, pad), (0, pad)))
    m = padded.shape[0] // step
    return padded.reshape(m, step, m, step).max(axis=(1, 3))


def colourize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → ``[..., 3]`` uint8 RGB on the Blues scale."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(BLUES))
    rgb = [np.interp(v, stops, BLUES[:, c]) for c in range(3)]
    return np.stack(rgb, axis=-1).round().astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB ``[h, w, 3]`` uint8 image as PNG bytes."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def thumbnail_png(pattern: np.ndarray) -> str:
    """One head's pattern as a ``data:image/png;base64,…`` URI."""
    data = png_bytes(colourize(pooled(np.asarray(pattern, dtype=np.float32))))
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def head_patterns(patterns: np.ndarray, *, title: str | None = None) -> go.Figure:
    """Every head's ``[q, k]`` pattern of a ``[layer, head, q, k]`` array as a grid of small
    heatmaps: rows are layers, columns heads, one shared 0..1 colour scale."""
    n_layers, n_heads, n, _ = patterns.shape
    fig = make_subplots(
        rows=n_layers,
        cols=n_heads,
        horizontal_spacing=min(0.02, 0.2 / max(n_heads, 1)),
        vertical_spacing=min(0.03, 0.3 / max(n_layers, 1)),
        row_titles=[f"L{layer}" for layer in range(n_layers)],
        column_titles=[f"H{head}" for head in range(n_heads)],
    )
    for layer in range(n_layers):
        for head in range(n_heads):
            fig.add_trace(
                go.Heatmap(
                    z=np.asarray(patterns[layer, head], dtype=np.float32),
                    zmin=0.0,
                    zmax=1.0,
                    colorscale=SEQUENTIAL_SCALE,
                    showscale=layer == 0 and head == 0,
                    colorbar=colour_bar("attention"),
                    hovertemplate=f"head {layer}.{head}<br>query %{{y}}<br>key %{{x}}<br>"
                    "attention %{z:.3f}<extra></extra>",
                ),
                row=layer + 1,
                col=head + 1,
            )
    light_layout(fig, aspect=min(1.3, max(0.3, n_layers / n_heads)), title=title)
    fig.update_xaxes(showticklabels=False, ticks="", showline=False)
    fig.update_yaxes(showticklabels=False, ticks="", showline=False, autorange="reversed")
    return fig


def overlay(
    rows: Sequence[np.ndarray],
    heads: Sequence[tuple[int, int]],
    tokens: list[str],
    query: int,
    *,
    direction: str = "from",
) -> go.Figure:
    """Attention of several heads at one token, one colour per head: ``direction="from"``:
    each head's weights from query ``query`` over the keys; ``"to"``: each query's weight on
    key ``query``."""
    labels = [escape_label(t) for t in tokens]
    fig = go.Figure()
    x = list(range(len(tokens)))
    for i, ((layer, head), values) in enumerate(zip(heads, rows, strict=True)):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.asarray(values, dtype=np.float32),
                mode="lines+markers",
                name=f"head {layer}.{head}",
                line=dict(color=head_colour(i), width=2),
                marker=dict(size=5),
                customdata=labels,
                hovertemplate=f"head {layer}.{head}<br>%{{x}} %{{customdata}}<br>"
                "attention %{y:.3f}<extra></extra>",
            )
        )
    where = labels[query] if 0 <= query < len(labels) else str(query)
    what = f"from token {query} {where}" if direction == "from" else f"to token {query} {where}"
    light_layout(fig, aspect=0.5, title=f"attention {what}")
    axis = "key" if direction == "from" else "query"
    fig.update_yaxes(title_text="attention", range=[0, 1.02])
    if len(tokens) <= MAX_LABELLED_TOKENS:
        fig.update_xaxes(title_text=f"{axis} token", tickmode="array", tickvals=x,
                         ticktext=labels, tickangle=-90)  # fmt: skip
        fig.update_layout(margin=dict(b=label_room(labels)))
    else:
        fig.update_xaxes(title_text=f"{axis} position", dtick=tick_step(len(tokens)))
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig


def logit_lens(
    lens: dict[str, list[dict[str, float]]], targets: dict[str, str], n_layers: int
) -> go.Figure:
    """Probability of each target (role → token text) per layer of the residual stream."""
    names = [f"resid_pre {i}" for i in range(n_layers)] + ["final"]
    fig = go.Figure()
    for i, (role, rows) in enumerate(lens.items()):
        label = escape_label(targets.get(role, role))
        name = f"{'top next token' if role == 'top' else 'next token'} {label}"
        fig.add_trace(
            go.Scatter(
                x=names,
                y=[r["prob"] for r in rows],
                customdata=[[r["logit"], r["rank"]] for r in rows],
                mode="lines+markers",
                name=name,
                line=dict(color=CATEGORICAL[i % len(CATEGORICAL)], width=2),
                hovertemplate="%{x}<br>p %{y:.3f}<br>logit %{customdata[0]:.2f}<br>"
                "rank %{customdata[1]}<extra>" + name + "</extra>",
            )
        )
    light_layout(fig, aspect=0.5, title="logit lens at the last token")
    fig.update_yaxes(title_text="probability", range=[0, 1.02])
    fig.update_xaxes(title_text="residual stream read")
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig


def token_display(token: str) -> str:
    """A token as plain page text: newlines and tabs drawn, other control characters (a raw
    byte of a byte-level BPE token) written ``\\xNN``; spaces kept (the page keeps them)."""
    token = token.replace("\n", "↵").replace("\t", "⇥")
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in token)
