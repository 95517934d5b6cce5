"""Figures and tables for sparse autoencoders trained on attention outputs.

Inputs follow the SAE artifact conventions: ``training_curve`` summary dict (step, mse, l0,
dead_fraction, explained_variance), ``sae_head_shares.parquet`` rows (feature, layer, head,
share), ``sae_top_contexts.json`` entries (``{"tokens", "acts", "max"}``), ``sae_dfa.parquet``
rows (feature, context, source_pos, layer, head, value) and ``sae_features.parquet`` rows
(feature, frequency, mean_act, max_act, dominant_head, dominant_share, n_heads_50).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.heads import grid_heatmap
from app.figures.style import (
    CATEGORICAL,
    SEQUENTIAL_SCALE,
    colour_bar,
    escape_label,
    light_layout,
    tick_step,
)

TRAINING_PANELS = (
    ("mse", "reconstruction MSE"),
    ("l0", "L0 (active features)"),
    ("dead_fraction", "dead features"),
    ("explained_variance", "explained variance"),
)
FEATURE_COLUMNS = (
    "feature",
    "frequency",
    "mean_act",
    "max_act",
    "dominant_head",
    "dominant_share",
    "n_heads_50",
)


def training_curves(curve: dict, *, title: str | None = None) -> go.Figure:
    """Four panels against training step: MSE, L0, dead fraction, explained variance."""
    step = np.asarray(curve["step"], dtype=float)
    present = [(key, label) for key, label in TRAINING_PANELS if key in curve]
    if not present:
        raise ValueError("training curve has none of: " + ", ".join(k for k, _ in TRAINING_PANELS))
    fig = make_subplots(
        rows=2,
        cols=2,
        shared_xaxes=True,
        horizontal_spacing=0.16,
        vertical_spacing=0.14,
        subplot_titles=[label for _, label in present],
    )
    for i, (key, label) in enumerate(present):
        values = np.asarray(curve[key], dtype=float)
        if values.shape != step.shape:
            raise ValueError(f"training curve: {key!r} has {values.size} values, step {step.size}")
        fig.add_scatter(
            x=step,
            y=values,
            mode="lines",
            name=label,
            showlegend=False,
            line=dict(color=CATEGORICAL[i], width=1.6),
            row=i // 2 + 1,
            col=i % 2 + 1,
            hovertemplate=f"step %{{x}}<br>{label} %{{y:.4g}}<extra></extra>",
        )
    light_layout(fig, aspect=0.75, title=title)
    fig.update_xaxes(title_text="training step", row=2)
    fig.update_annotations(font_size=11)
    return fig


def head_share_bars(
    shares_df: pd.DataFrame, feature: int, *, top_n: int = 16, title: str | None = None
) -> go.Figure:
    """The share of one feature's attribution carried by each head, largest ``top_n`` heads;
    the remaining heads are summed into one ``other`` bar."""
    rows = shares_df[shares_df["feature"] == feature]
    if rows.empty:
        raise ValueError(f"no head shares for feature {feature}")
    rows = rows.sort_values("share", ascending=False)
    top, rest = rows.head(top_n), rows.iloc[top_n:]
    labels = [f"{int(r.layer)}.{int(r.head)}" for r in top.itertuples()]
    values = top["share"].to_list()
    if not rest.empty:
        labels.append(f"other ({len(rest)})")
        values.append(float(rest["share"].sum()))
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=values,
            marker_color=CATEGORICAL[0],
            hovertemplate="head %{x}<br>share %{y:.3f}<extra></extra>",
        )
    )
    light_layout(fig, aspect=0.55, title=title or f"feature {feature}")
    fig.update_xaxes(title_text="head (layer.head)", type="category")
    fig.update_yaxes(title_text="share of attribution", rangemode="tozero")
    return fig


def context_shading(context: dict) -> tuple[list[float], int, float]:
    """How one top context is shaded: each token's activation relative to the context's own
    peak (0 for values at or below 0, 1 at the peak), the peak token's index and its value.
    Shading by the peak of all shown contexts washed every context of a feature out to one
    tone; within a context the peak is what the feature fired on."""
    acts = [float(a) for a in context.get("acts", [])]
    if len(acts) != len(context.get("tokens", [])):
        raise ValueError("a context's tokens and acts differ in length")
    if not acts:
        return [], -1, 0.0
    peak_index = int(np.argmax(acts))
    peak = acts[peak_index]
    scale = peak if peak > 0 else 1.0
    return [max(a, 0.0) / scale for a in acts], peak_index, peak


def top_contexts(contexts: list[dict], *, title: str | None = None) -> go.Figure:
    """Top-activating contexts of a feature: one row per context, each token shaded by its
    activation relative to that context's peak (``context_shading``); the peak token is bold,
    outlined and labelled with its activation."""
    if not contexts:
        raise ValueError("no contexts to show")
    width = max(len(c["tokens"]) for c in contexts)
    rel = np.full((len(contexts), width), np.nan)
    acts = np.full((len(contexts), width), np.nan)
    text = np.full((len(contexts), width), "", dtype=object)
    peaks = []
    for i, context in enumerate(contexts):
        if len(context["acts"]) != len(context["tokens"]):
            raise ValueError(f"context {i}: tokens and acts differ in length")
        shade, peak_index, peak = context_shading(context)
        n = len(shade)
        rel[i, :n] = shade
        acts[i, :n] = [float(a) for a in context["acts"]]
        text[i, :n] = [escape_label(str(t)) for t in context["tokens"]]
        if peak_index >= 0:
            text[i, peak_index] = f"<b>{text[i, peak_index]}</b>"
            peaks.append((i, peak_index, peak))
    fig = go.Figure(
        go.Heatmap(
            z=rel,
            text=text,
            customdata=acts,
            texttemplate="%{text}",
            textfont=dict(size=10),
            zmin=0.0,
            zmax=1.0,
            colorscale=SEQUENTIAL_SCALE,
            xgap=1,
            ygap=3,
            hoverongaps=False,
            colorbar=colour_bar("activation ÷ context peak", outline=True),
            hovertemplate="context %{y}<br>%{text}<br>activation %{customdata:.3g} "
            "(%{z:.0%} of the context's peak)<extra></extra>",
        )
    )
    for row, col, peak in peaks:
        fig.add_shape(
            type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5,
            line=dict(color="#111111", width=2), fillcolor="rgba(0,0,0,0)",
        )  # fmt: skip
        fig.add_annotation(
            x=col + 0.5, y=row - 0.5, text=f"{peak:.3g}", showarrow=False,
            xanchor="left", yanchor="bottom", font=dict(size=9, color="#111111"),
        )  # fmt: skip
    light_layout(fig, aspect=min(1.2, 0.12 * len(contexts) + 0.15), title=title)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(
        title_text="context",
        autorange="reversed",
        showgrid=False,
        dtick=tick_step(len(contexts)),
        showline=False,
    )
    return fig


def dfa_heatmap(
    dfa_df: pd.DataFrame, feature: int, context: int, *, tokens: list[str] | None = None
) -> go.Figure:
    """Direct feature attribution of one context by source position and head.

    Rows are heads (``layer.head``), columns source positions; signed, so ``RdBu`` at 0.
    """
    rows = dfa_df[(dfa_df["feature"] == feature) & (dfa_df["context"] == context)]
    if rows.empty:
        raise ValueError(f"no DFA rows for feature {feature}, context {context}")
    heads = sorted({(int(r.layer), int(r.head)) for r in rows.itertuples()})
    index = {h: i for i, h in enumerate(heads)}
    n_pos = int(rows["source_pos"].max()) + 1
    grid = np.zeros((len(heads), n_pos))
    for r in rows.itertuples():
        grid[index[(int(r.layer), int(r.head))], int(r.source_pos)] += float(r.value)
    labels = list(tokens[:n_pos]) if tokens is not None and len(tokens) >= n_pos else None
    fig = grid_heatmap(
        grid, metric="DFA", x_title="source position", y_title="head", signed=True, x_labels=labels
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(heads))),
        ticktext=[f"{la}.{h}" for la, h in heads],
        title_text="head (layer.head)",
    )
    return fig


def feature_table(
    features_df: pd.DataFrame,
    *,
    sort_by: str = "frequency",
    descending: bool = True,
    top_n: int | None = None,
) -> pd.DataFrame:
    """The feature table (columns as in ``sae_features.parquet``) sorted for display."""
    missing = [c for c in FEATURE_COLUMNS if c not in features_df.columns]
    if missing:
        raise ValueError("feature table is missing columns: " + ", ".join(missing))
    if sort_by not in FEATURE_COLUMNS:
        raise ValueError(f"cannot sort by {sort_by!r}; choose one of: {', '.join(FEATURE_COLUMNS)}")
    table = features_df.loc[:, list(FEATURE_COLUMNS)].sort_values(
        sort_by, ascending=not descending, kind="stable"
    )
    return (table.head(top_n) if top_n is not None else table).reset_index(drop=True)
