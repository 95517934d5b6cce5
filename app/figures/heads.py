"""Layer × head heatmaps and layer × position heatmaps of per-head results.

Input rows follow the store's head-result frame: columns ``layer``, ``head``, ``value`` and
optionally ``metric``, ``position``, ``prompt``. Aggregate rows (``position`` and ``prompt``
both null) are preferred when a frame mixes aggregate and per-prompt rows.

Conventions: layer on y with layer 0 at the top, head (or position) on x; ``RdBu`` centred at
0 with symmetric limits for signed effects, ``Blues`` from 0 for non-negative scores; hover
shows layer, head and value. The grid is a dense numpy array handed to one ``go.Heatmap``
(no per-cell annotations), so an 80-layer × 64-head grid or a 1,024-position grid stays cheap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.figures.style import (
    colour_bar,
    colour_limits,
    colour_scale,
    escape_label,
    grid_aspect,
    light_layout,
    metric_is_signed,
    tick_step,
)


def select_metric(df: pd.DataFrame, metric: str, column: str) -> pd.DataFrame:
    """Rows of ``metric`` with a non-null ``column`` (``head`` or ``position``).

    Raises ValueError naming the metric when nothing matches.
    """
    rows = df
    if "metric" in rows.columns:
        rows = rows[rows["metric"] == metric]
    if column not in rows.columns:
        raise ValueError(f"head results have no {column!r} column")
    rows = rows[rows[column].notna()]
    if rows.empty:
        raise ValueError(f"no per-{column} rows for metric {metric!r}")
    return rows


def _prefer_aggregate(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    others = [c for c in ("position", "prompt") if c in rows.columns and c not in keys]
    if others:
        aggregate = rows[rows[others].isna().all(axis=1)]
        if not aggregate.empty:
            rows = aggregate
    if rows.duplicated(subset=keys).any():
        raise ValueError(
            f"several rows per ({', '.join(keys)}): filter the frame to one prompt first"
        )
    return rows


def dense_grid(rows: pd.DataFrame, row_key: str, col_key: str) -> np.ndarray:
    """A dense ``[rows, cols]`` float array from long-format rows; missing cells are NaN."""
    r = rows[row_key].to_numpy(dtype=np.int64)
    c = rows[col_key].to_numpy(dtype=np.int64)
    if r.min() < 0 or c.min() < 0:
        raise ValueError(f"negative {row_key} or {col_key} index in head results")
    grid = np.full((int(r.max()) + 1, int(c.max()) + 1), np.nan, dtype=np.float64)
    grid[r, c] = rows["value"].to_numpy(dtype=np.float64)
    return grid


def head_grid(df: pd.DataFrame, metric: str) -> np.ndarray:
    """The ``[layer, head]`` grid of one metric (NaN where a head has no value)."""
    rows = _prefer_aggregate(select_metric(df, metric, "head"), ["layer", "head"])
    return dense_grid(rows, "layer", "head")


def grid_heatmap(
    grid: np.ndarray,
    *,
    metric: str,
    x_title: str,
    y_title: str,
    signed: bool | None = None,
    x_labels: list[str] | None = None,
    title: str | None = None,
    y_values: list[int] | None = None,
) -> go.Figure:
    """A heatmap of a ``[rows, cols]`` grid with rows on y (row 0 at the top).

    ``x_labels`` (one per column; ``""`` where a column has none, which keeps its number) label
    the x axis. ``y_values`` name the rows (e.g. the layers a grid keeps): consecutive values
    stay a numeric axis from the first (export upsamples such a grid crisply), others become a
    category axis; None: rows are 0..n-1."""
    if signed is None:
        signed = metric_is_signed(metric, grid)
    zmin, zmax = colour_limits(grid, signed)
    n_rows, n_cols = grid.shape
    hover_x = "%{x}" if x_labels is None else "%{x} %{customdata}"
    trace = go.Heatmap(
        z=grid,
        x0=0,
        dx=1,
        zmin=zmin,
        zmax=zmax,
        zmid=0.0 if signed else None,
        colorscale=colour_scale(signed),
        colorbar=colour_bar(metric),
        hovertemplate=f"{y_title} %{{y}}<br>{x_title} {hover_x}<br>{metric} %{{z:.4g}}"
        "<extra></extra>",
        hoverongaps=False,
        xgap=0,
        ygap=0,
    )
    first = 0 if not y_values else int(y_values[0])
    categories = y_values is not None and list(y_values) != list(range(first, first + n_rows))
    if categories:
        trace.update(y=[str(v) for v in y_values or []])
    else:
        trace.update(y0=first, dy=1)
    if x_labels is not None:
        escaped = np.asarray([escape_label(t) for t in x_labels], dtype=object)
        trace.customdata = np.tile(escaped, (n_rows, 1))
    fig = go.Figure(trace)
    light_layout(fig, aspect=grid_aspect(n_rows, n_cols), title=title)
    # integer ticks fit the fixed margins: no automargin pass, which redraws the whole plot in
    # the browser (half the draw time of an 80 × 64 grid); export sets automargin itself
    fig.update_xaxes(
        title_text=x_title,
        showgrid=False,
        dtick=tick_step(n_cols),
        tick0=0,
        automargin=x_labels is not None,
    )
    fig.update_yaxes(
        title_text=y_title,
        showgrid=False,
        dtick=tick_step(n_rows),
        tick0=0,
        autorange="reversed",
        automargin=False,
    )
    if categories:
        fig.update_yaxes(type="category")
    if x_labels is not None and n_cols <= 48:
        fig.update_xaxes(
            tickmode="array",
            tickvals=list(range(n_cols)),
            ticktext=[escape_label(t) if t else str(i) for i, t in enumerate(x_labels)],
            tickangle=-60,
        )
    return fig


def head_heatmap(
    df: pd.DataFrame, metric: str, *, title: str | None = None, signed: bool | None = None
) -> go.Figure:
    """Layer × head heatmap of one metric. ``signed=None`` decides from the metric and values."""
    grid = head_grid(df, metric)
    return grid_heatmap(
        grid, metric=metric, x_title="head", y_title="layer", signed=signed, title=title
    )


def position_heatmap(
    df: pd.DataFrame,
    metric: str,
    *,
    tokens: list[str] | None = None,
    title: str | None = None,
    signed: bool | None = None,
) -> go.Figure:
    """Layer × position heatmap of a per-position metric (e.g. ``patch_resid``).

    Only layers with a value are rows (one head's grid is its own layer's row, not a band of
    empty layers). ``tokens`` (a prompt's, one per position from 0) label the x axis when the
    sequence is short enough to read; positions past a shorter prompt keep their number.
    """
    rows = _prefer_aggregate(select_metric(df, metric, "position"), ["layer", "position"])
    grid = dense_grid(rows, "layer", "position")
    layers = [int(i) for i in np.flatnonzero(np.isfinite(grid).any(axis=1))]
    if not layers:
        raise ValueError(f"every {metric!r} value is undefined (NaN): nothing to draw")
    n_cols = grid.shape[1]
    labels = None
    if tokens is not None:
        labels = [str(t) for t in tokens[:n_cols]] + [""] * max(0, n_cols - len(tokens))
    return grid_heatmap(
        grid[layers],
        metric=metric,
        x_title="position",
        y_title="layer",
        signed=signed,
        x_labels=labels,
        title=title,
        y_values=layers,
    )
