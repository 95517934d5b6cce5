"""Figures of a ``lens`` run: a head's OV lens and its lenses' top tokens per position.

Inputs are plain records read from the run's ``lens.safetensors`` and ``tokens.json``
(``app/services/lens.py``), token ids already turned into their text:

- ``ov_lens``: :class:`OvLensView` — the head's average top promoted and top suppressed tokens
  with their logits (over the run's OV source set), and for each distinct token of a prompt its
  own top promoted tokens;
- ``lens_tokens``: :class:`LensTokensView` — for each position of a prompt the lens' top-k
  tokens and their probabilities (the head logit lens or the trained lens).

Token tables are heatmaps: a row per source token or position, a column per rank, the token's
text in the cell and its logit or probability as colour (sequential ``Blues`` from 0 for
probabilities, diverging ``RdBu`` centred at 0 for logits). Builders are pure and raise
ValueError naming what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.style import (
    CATEGORICAL,
    GRID_COLOR,
    SEQUENTIAL_SCALE,
    SIGNED_SCALE,
    colour_bar,
    colour_limits,
    escape_label,
    label_room,
    light_layout,
)

MAX_ROWS = 64  # positions of a token table drawn
MAX_SOURCES = 20  # source tokens of the OV lens' table drawn (the prompt's first distinct ones)


@dataclass(frozen=True)
class OvLensView:
    layer: int
    head: int
    source_set: str  # what the average runs over, e.g. "vocabulary (35 tokens)"
    promoted: list[tuple[str, float]]  # (token, mean logit), largest first
    suppressed: list[tuple[str, float]]  # smallest first
    sources: list[str]  # distinct tokens of the prompt, in order of appearance
    source_top: list[list[str]]  # [source][rank] top promoted tokens
    source_logits: list[list[float]]
    copy_score: float | None = None


@dataclass(frozen=True)
class LensTokensView:
    layer: int
    head: int
    lens: str  # "head logit lens" or "trained lens"
    tokens: list[str]  # the prompt's tokens (row labels)
    top: list[list[str]]  # [position][rank] top tokens
    probs: list[list[float]]


def _table_trace(
    rows: Sequence[str], cells: list[list[str]], values: np.ndarray, *, signed: bool, bar: str
) -> go.Heatmap:
    k = values.shape[1] if values.ndim == 2 else 0
    lo, hi = colour_limits(values, signed)
    text = np.asarray([[escape_label(t) for t in row] for row in cells], dtype=object)
    custom = np.asarray([[r] * k for r in rows], dtype=object)
    return go.Heatmap(
        z=values,
        x=list(range(1, k + 1)),
        y=list(range(len(rows))),
        text=text,
        texttemplate="%{text}",
        textfont=dict(size=11),
        customdata=custom,
        zmin=lo,
        zmax=hi,
        colorscale=SIGNED_SCALE if signed else SEQUENTIAL_SCALE,
        colorbar=colour_bar(bar),
        hovertemplate="%{customdata}<br>rank %{x}: %{text}<br>" + bar + " %{z:.3g}<extra></extra>",
        xgap=1,
        ygap=1,
    )


def _check_table(rows: Sequence[str], cells: list[list[str]], values: list[list[float]]) -> None:
    if not rows:
        raise ValueError("no rows to draw")
    if len(cells) != len(rows) or len(values) != len(rows):
        raise ValueError(f"{len(cells)} token rows and {len(values)} value rows for {len(rows)}")


def _row_axis(fig: go.Figure, labels: list[str], title: str, **where) -> int:
    shown = list(labels)  # already escaped
    fig.update_yaxes(
        title_text=title, tickmode="array", tickvals=list(range(len(labels))), ticktext=shown,
        autorange="reversed", showgrid=False, automargin=False, **where,
    )  # fmt: skip
    return label_room(shown)


def ov_lens(view: OvLensView, *, title: str | None = None) -> go.Figure:
    """Left: the head's average top promoted (positive) and suppressed (negative) tokens.
    Right: for each distinct token of the prompt, its own top promoted tokens."""
    if not view.promoted or not view.suppressed:
        raise ValueError(f"no OV lens tokens for head {view.layer}.{view.head}")
    has_sources = bool(view.sources)
    if has_sources:
        _check_table(view.sources, view.source_top, view.source_logits)
    fig = make_subplots(
        rows=1, cols=2 if has_sources else 1, horizontal_spacing=0.2,
        column_widths=[0.38, 0.62] if has_sources else None,
        subplot_titles=["on average"] + (["per token of the prompt"] if has_sources else []),
    )  # fmt: skip
    bars = [*view.promoted, *reversed(view.suppressed)]
    labels = [escape_label(t) for t, _ in bars]
    values = [v for _, v in bars]
    fig.add_bar(
        x=values, y=list(range(len(bars))), orientation="h",
        marker_color=[CATEGORICAL[0] if v >= 0 else CATEGORICAL[1] for v in values],
        customdata=labels, hovertemplate="%{customdata}<br>mean logit %{x:.3g}<extra></extra>",
        showlegend=False, row=1, col=1,
    )  # fmt: skip
    copy = "" if view.copy_score is None else f" · copy score {view.copy_score:.2f}"
    default = (
        f"head {view.layer}.{view.head} · OV lens{copy}"
        f"<br><sup>average over {view.source_set}</sup>"
    )
    light_layout(fig, aspect=0.6, title=title or default)
    room = _row_axis(fig, labels, "promoted ↑ / suppressed ↓", row=1, col=1)
    fig.update_xaxes(
        title_text="mean logit", showgrid=True, gridcolor=GRID_COLOR,
        nticks=4, tickangle=0, row=1, col=1,
    )  # fmt: skip
    if has_sources:
        rows = [escape_label(t) for t in view.sources[:MAX_SOURCES]]
        values_arr = np.asarray(view.source_logits[:MAX_SOURCES], dtype=float)
        trace = _table_trace(rows, view.source_top[:MAX_SOURCES], values_arr, signed=True,
                             bar="logit")  # fmt: skip
        fig.add_trace(trace, row=1, col=2)
        _row_axis(fig, rows, "", row=1, col=2)
        fig.update_xaxes(title_text="rank", dtick=1, showgrid=False, row=1, col=2)
    fig.update_layout(margin=dict(l=room, t=80 if title is None else 50))
    return fig


def lens_tokens(view: LensTokensView, *, title: str | None = None) -> go.Figure:
    """A row per position of the prompt (its token on the axis), the lens' top-k tokens across,
    coloured by their probability under the lens."""
    _check_table(view.tokens, view.top, view.probs)
    rows = view.tokens[:MAX_ROWS]
    probs = np.asarray(view.probs[:MAX_ROWS], dtype=float)
    labels = [f"{i} {escape_label(t)}" for i, t in enumerate(rows)]
    fig = go.Figure(
        _table_trace(labels, view.top[:MAX_ROWS], probs, signed=False, bar="probability")
    )
    cut = (
        f" (first {MAX_ROWS} of {len(view.tokens)} positions)"
        if len(view.tokens) > MAX_ROWS
        else ""
    )
    light_layout(
        fig, aspect=min(1.6, max(0.5, 0.06 * len(rows) + 0.2)),
        title=title or f"head {view.layer}.{view.head} · {view.lens}{cut}",
    )  # fmt: skip
    room = _row_axis(fig, labels, "position · token")
    fig.update_xaxes(title_text="rank", dtick=1, showgrid=False)
    fig.update_layout(margin=dict(l=room))
    return fig
