"""Comparing one metric across two runs: side by side and as a difference (B − A).

Both runs must have the same head grid (same number of layers and heads); a mismatch raises
ValueError naming both shapes. Side-by-side panels share one colour scale so that equal
colours mean equal values; the difference is signed, so ``RdBu`` centred at 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.heads import grid_heatmap, head_grid
from app.figures.style import (
    colour_bar,
    colour_limits,
    colour_scale,
    grid_aspect,
    light_layout,
    metric_is_signed,
    tick_step,
)


def _grids(df_a: pd.DataFrame, df_b: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = head_grid(df_a, metric), head_grid(df_b, metric)
    if a.shape != b.shape:
        raise ValueError(
            f"runs have different head grids: A is {a.shape[0]}×{a.shape[1]}, "
            f"B is {b.shape[0]}×{b.shape[1]} (layers×heads); compare runs of the same model shape"
        )
    return a, b


def _add_panel(
    fig: go.Figure,
    grid: np.ndarray,
    title: str,
    metric: str,
    scale: tuple[float, float, bool],
    showscale: bool,
    row: int,
    col: int,
) -> None:
    """One layer × head heatmap panel on a shared colour scale ``(zmin, zmax, signed)``."""
    zmin, zmax, signed = scale
    fig.add_heatmap(
        z=grid,
        x0=0,
        dx=1,
        y0=0,
        dy=1,
        zmin=zmin,
        zmax=zmax,
        zmid=0.0 if signed else None,
        colorscale=colour_scale(signed),
        coloraxis=None,
        showscale=showscale,
        colorbar=colour_bar(metric, outline=True),
        hovertemplate=f"{title}<br>layer %{{y}}<br>head %{{x}}<br>"
        f"{metric} %{{z:.4g}}<extra></extra>",
        hoverongaps=False,
        row=row,
        col=col,
    )


def side_by_side(
    df_a: pd.DataFrame, df_b: pd.DataFrame, metric: str, *, titles: tuple[str, str] = ("A", "B")
) -> go.Figure:
    """Two layer × head heatmaps of ``metric`` on one shared colour scale."""
    a, b = _grids(df_a, df_b, metric)
    both = np.concatenate([a.ravel(), b.ravel()])
    signed = metric_is_signed(metric, both)
    zmin, zmax = colour_limits(both, signed)
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(titles), horizontal_spacing=0.08)
    for col, grid in ((1, a), (2, b)):
        _add_panel(fig, grid, titles[col - 1], metric, (zmin, zmax, signed), col == 2, 1, col)
    n_rows, n_cols = a.shape
    light_layout(fig, aspect=grid_aspect(n_rows, 2 * n_cols + 2))
    fig.update_xaxes(title_text="head", showgrid=False, dtick=tick_step(n_cols), tick0=0)
    fig.update_yaxes(showgrid=False, autorange="reversed", dtick=tick_step(n_rows), tick0=0)
    fig.update_yaxes(title_text="layer", col=1)
    fig.update_annotations(font_size=12)
    return fig


def difference_heatmap(df_a: pd.DataFrame, df_b: pd.DataFrame, metric: str) -> go.Figure:
    """Layer × head heatmap of ``metric`` in run B minus run A."""
    a, b = _grids(df_a, df_b, metric)
    return grid_heatmap(
        b - a, metric=f"Δ {metric} (B − A)", x_title="head", y_title="layer", signed=True
    )


SWEEP_COLUMNS = 3


def sweep_grids(frames: list[tuple[str, pd.DataFrame]], metric: str) -> go.Figure:
    """One layer × head heatmap of ``metric`` per run of a sweep (titled by what varies), on one
    shared colour scale; runs of different models may have different grids."""
    if not frames:
        raise ValueError(f"no finished run of the sweep stores {metric!r}")
    grids = [(title, head_grid(df, metric)) for title, df in frames]
    values = np.concatenate([g.ravel() for _, g in grids])
    signed = metric_is_signed(metric, values)
    zmin, zmax = colour_limits(values, signed)
    cols = min(SWEEP_COLUMNS, len(grids))
    rows = -(-len(grids) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[title for title, _ in grids],
        horizontal_spacing=0.06,
        vertical_spacing=0.12 if rows > 1 else 0.08,
    )
    for i, (title, grid) in enumerate(grids):
        scale = (zmin, zmax, signed)
        _add_panel(fig, grid, title, metric, scale, i == 0, i // cols + 1, i % cols + 1)
    n_layers, n_heads = grids[0][1].shape
    light_layout(fig, aspect=grid_aspect(n_layers * rows, n_heads * cols + cols))
    fig.update_xaxes(showgrid=False, dtick=tick_step(n_heads), tick0=0)
    fig.update_yaxes(showgrid=False, autorange="reversed", dtick=tick_step(n_layers), tick0=0)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text="layer", row=r, col=1)
    for c in range(1, cols + 1):  # under the lowest panel of each column
        lowest = rows if (rows - 1) * cols + c <= len(grids) else rows - 1
        fig.update_xaxes(title_text="head", row=lowest, col=c)
    fig.update_annotations(font_size=11)
    return fig


def mover_bars(table: pd.DataFrame, metric: str, *, title: str | None = None) -> go.Figure:
    """The movers of two runs (``app.services.compare.movers``: layer, head, a, b, delta,
    rank_a, rank_b; largest |delta| first) as horizontal bars of Δ = B − A, the largest mover
    at the top, coloured on the signed ``RdBu`` scale centred at 0 like the difference heatmap."""
    if table.empty:
        raise ValueError(f"no head has {metric!r} in both runs")
    labels = [f"head {int(r.layer)}.{int(r.head)}" for r in table.itertuples()]
    delta = table["delta"].to_numpy(dtype=float)
    zmin, zmax = colour_limits(delta, True)
    custom = table[["a", "b", "rank_a", "rank_b"]].to_numpy(dtype=float)
    fig = go.Figure(
        go.Bar(
            x=delta,
            y=labels,
            orientation="h",
            marker=dict(color=delta, colorscale=colour_scale(True), cmin=zmin, cmax=zmax, cmid=0),
            customdata=custom,
            hovertemplate="%{y}<br>A %{customdata[0]:.4g} (rank %{customdata[2]})<br>"
            "B %{customdata[1]:.4g} (rank %{customdata[3]})<br>Δ %{x:.4g}<extra></extra>",
        )
    )
    light_layout(fig, aspect=min(1.3, max(0.45, 0.1 * len(labels) + 0.2)), title=title)
    fig.update_xaxes(title_text=f"Δ {metric} (B − A)", zeroline=True, zerolinecolor="#888888")
    fig.update_yaxes(autorange="reversed", title_text=None)
    return fig
