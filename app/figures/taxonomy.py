"""Figures of a ``taxonomy`` run: the KV-cache curve, retrieval maps, head similarity, spans,
dormancy and massive activations.

Inputs follow what the run stores (``analysis/taxonomy/job.py``):

- ``kv_curve``: the summary's ``kv_curve`` dict (``fractions``, ``kv_saved``, ``curves`` of
  ``{"duo" | "razor" | "random": {metric: {"mean", "std"}}}``, ``sink``, ``window``,
  ``context``…);
- ``retrieval_map``: per-prompt ``retrieval_score`` rows (``prompt``, ``layer``, ``head``,
  ``value``) with each prompt's needle ``depth`` and ``context`` joined on as columns;
- ``head_similarity``: the ``head_similarity.json`` artifact (``heads``, ``distance``,
  ``order``, ``clusters``, ``representatives``);
- ``span_profile``: per-position ``span`` rows (``position`` = query position);
- ``dormancy``: per-prompt ``sink_mass`` and ``output_norm_ratio`` rows (``metric`` column);
- ``massive_activations``: the summary's ``massive_activations`` list of
  ``{"layer", "peak", "ratio", "position", "dimension"}``.

Builders are pure (data in, figure out) and raise ValueError naming what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.style import (
    AXIS_COLOR,
    CATEGORICAL,
    GRID_COLOR,
    SEQUENTIAL_SCALE,
    colour_bar,
    grid_aspect,
    light_layout,
)

# The curves of a KV-cache budget, in legend order: key, label, colour, marker, dash.
KV_METHODS = (
    ("duo", "DuoAttention (streaming KL)", CATEGORICAL[0], "circle", "solid"),
    ("razor", "RazorAttention (echo+induction)", CATEGORICAL[1], "square", "dash"),
    ("random", "random, mean ± std", "#777777", "diamond", "dot"),
)
KV_METRICS = {
    "loss": "loss",
    "logit_diff": "logit difference",
    "needle_accuracy": "needle accuracy",
}
HEAD_MARK = "★"


def _head_rows(frame: pd.DataFrame, layer: int, head: int, metric: str | None) -> pd.DataFrame:
    rows = frame
    if metric is not None and "metric" in rows.columns:
        rows = rows[rows["metric"] == metric]
    rows = rows[(rows["layer"] == layer) & (rows["head"] == head)]
    if rows.empty:
        what = f"{metric!r} " if metric else ""
        raise ValueError(f"no {what}rows for head {layer}.{head}")
    return rows


# -- the KV-cache curve ---------------------------------------------------------------------------


def _percent(x: float) -> str:
    return f"{100 * x:.0f}%"


def kv_curve(
    curve: dict[str, Any], *, metrics: Sequence[str] | None = None, title: str | None = None
) -> go.Figure:
    """One panel per metric against the fraction of KV heads streaming (sink + window), a line
    per way of choosing them; the top axis and the hover give the KV-cache bytes saved."""
    fractions = np.asarray(curve["fractions"], dtype=float)
    saved = np.asarray(curve.get("kv_saved") or [np.nan] * fractions.size, dtype=float)
    curves: dict[str, dict[str, dict[str, list[float]]]] = curve.get("curves") or {}
    found = [m for m in KV_METRICS if any(m in c for c in curves.values())]
    found += sorted({m for c in curves.values() for m in c} - set(found))
    if metrics is not None:
        unknown = [m for m in metrics if m not in found]
        if unknown:
            raise ValueError(
                f"the KV curve has no metric {unknown[0]!r}; choose one of: " + ", ".join(found)
            )
        found = list(metrics)
    if not found:
        raise ValueError("the KV curve has no curves to draw")
    n = len(found)
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.1 if n > 1 else 0.0)
    custom = np.stack([fractions, saved], axis=-1)
    for col, metric in enumerate(found, start=1):
        label = KV_METRICS.get(metric, metric)
        for key, name, colour, symbol, dash in KV_METHODS:
            values = curves.get(key, {}).get(metric)
            if values is None:
                continue
            mean = np.asarray(values["mean"], dtype=float)
            if mean.shape != fractions.shape:
                raise ValueError(
                    f"KV curve {key}/{metric}: {mean.size} values for {fractions.size} fractions"
                )
            std = np.asarray(values.get("std") or np.zeros_like(mean), dtype=float)
            error = dict(type="data", array=std, visible=True, thickness=1, width=3)
            fig.add_scatter(
                x=fractions,
                y=mean,
                mode="lines+markers",
                name=name,
                legendgroup=key,
                showlegend=col == 1,
                line=dict(color=colour, width=1.6, dash=dash),
                marker=dict(color=colour, symbol=symbol, size=6),
                error_y=error if key == "random" else None,
                customdata=custom if key != "random" else np.column_stack([custom, std]),
                hovertemplate=f"{name}<br>%{{customdata[0]:.0%}} of KV heads streaming"
                f"<br>KV cache saved %{{customdata[1]:.1%}}<br>{label} %{{y:.4g}}"
                + (" ± %{customdata[2]:.3g}" if key == "random" else "")
                + "<extra></extra>",
                row=1,
                col=col,
            )
    light_layout(fig, aspect=0.45 if n > 1 else 0.75, title=title or _kv_title(curve))
    shown = _top_ticks(fractions)
    fig.update_xaxes(
        title_text="KV heads streaming",
        tickmode="array",
        tickvals=fractions[shown],
        ticktext=[_percent(f) for f in fractions[shown]],
        showgrid=True,
        gridcolor=GRID_COLOR,
        range=[-0.04, 1.04] if fractions.size and fractions.max() <= 1 else None,
    )
    fig.update_yaxes(showgrid=True, gridcolor=GRID_COLOR)
    for col, metric in enumerate(found, start=1):
        fig.update_yaxes(title_text=KV_METRICS.get(metric, metric), row=1, col=col)
    # a top axis per panel: the same positions labelled with the KV-cache bytes saved
    for col in range(1, n + 1):
        bottom = fig.get_subplot(1, col)
        x_name = bottom.xaxis.plotly_name.replace("axis", "")
        y_name = bottom.yaxis.plotly_name.replace("axis", "")
        fig.add_scatter(
            x=fractions,
            y=np.full(fractions.size, np.nan),
            xaxis=f"x{n + col}",
            yaxis=y_name,
            showlegend=False,
            hoverinfo="skip",
        )
        fig.layout[f"xaxis{n + col}"] = dict(
            overlaying=x_name,
            matches=x_name,
            side="top",
            anchor=y_name,
            tickmode="array",
            tickvals=fractions[shown],
            ticktext=[_percent(v) if np.isfinite(v) else "" for v in saved[shown]],
            title=dict(text="KV cache saved"),
            showgrid=False,
            linecolor=AXIS_COLOR,
            tickcolor=AXIS_COLOR,
            ticks="outside",
            ticklabeloverflow="allow",
        )
    fig.update_layout(
        legend=dict(orientation="h", x=0.0, xanchor="left", y=-0.25, yanchor="top"),
        margin=dict(t=110, b=90),
    )
    return fig


def _top_ticks(fractions: np.ndarray, most: int = 6) -> np.ndarray:
    """Indices of at most ``most`` evenly spread fractions (always the first and the last)."""
    if fractions.size <= most:
        return np.arange(fractions.size)
    return np.unique(np.linspace(0, fractions.size - 1, most).round().astype(int))


def _kv_title(curve: dict[str, Any]) -> str:
    heads = curve.get("kv_heads")
    group = curve.get("query_heads_per_kv_head")
    shape = f"{heads} KV heads" + (f" × {group} query heads" if group and group > 1 else "")
    return (
        f"KV cache budget: streaming heads keep sink {curve.get('sink')} + window "
        f"{curve.get('window')} of {curve.get('context')} tokens · {shape}"
    )


# -- retrieval -----------------------------------------------------------------------------------


def retrieval_map(
    frame: pd.DataFrame, layer: int, head: int, *, title: str | None = None
) -> go.Figure:
    """Needle depth × context length heatmap of one head's mean retrieval score.

    ``frame`` holds per-prompt ``retrieval_score`` rows with ``depth`` and ``context`` columns
    (a prompt's needle depth in 0..1 and its context in tokens)."""
    missing = {"depth", "context"} - set(frame.columns)
    if missing:
        raise ValueError("retrieval rows lack " + ", ".join(sorted(missing)))
    rows = _head_rows(frame, layer, head, "retrieval_score")
    rows = rows[rows["depth"].notna() & rows["context"].notna()]
    if rows.empty:
        raise ValueError(f"head {layer}.{head} has no retrieval rows with a needle depth")
    cells = (
        rows.astype({"depth": float, "context": int, "value": float})
        .groupby(["depth", "context"])["value"]
        .agg(["mean", "count"])
        .reset_index()
    )
    depths = sorted(cells["depth"].unique())
    contexts = sorted(cells["context"].unique())
    grid = np.full((len(depths), len(contexts)), np.nan)
    count = np.zeros_like(grid)
    for d, c, mean, n in cells.itertuples(index=False):
        grid[depths.index(d), contexts.index(c)] = mean
        count[depths.index(d), contexts.index(c)] = n
    x = [str(c) for c in contexts]
    y = [_percent(d) for d in depths]
    zmax = max(1.0, float(np.nanmax(grid)))
    trace = go.Heatmap(
        z=grid,
        x=x,
        y=y,
        zmin=0.0,
        zmax=zmax,
        colorscale=SEQUENTIAL_SCALE,
        colorbar=colour_bar("retrieval score"),
        customdata=count,
        texttemplate="%{z:.2f}" if grid.size <= 400 else None,
        hovertemplate="needle depth %{y}<br>context %{x} tokens<br>retrieval score %{z:.3f}"
        "<br>%{customdata} prompts<extra></extra>",
        hoverongaps=False,
        xgap=1,
        ygap=1,
    )
    fig = go.Figure(trace)
    light_layout(
        fig,
        aspect=grid_aspect(len(depths), len(contexts), lo=0.55, hi=0.9),
        title=title or f"head {layer}.{head} · retrieval score",
    )
    fig.update_xaxes(title_text="context (tokens)", type="category", showgrid=False)
    fig.update_yaxes(
        title_text="needle depth", type="category", showgrid=False, autorange="reversed"
    )
    return fig


# -- head similarity -----------------------------------------------------------------------------


def head_similarity(data: dict[str, Any], *, title: str | None = None) -> go.Figure:
    """Heads × heads Jensen–Shannon distance of their attention, rows and columns in the
    dendrogram's leaf order; clusters are outlined and their representatives starred."""
    heads = [str(h) for h in data["heads"]]
    distance = np.asarray(data["distance"], dtype=float)
    n = len(heads)
    if distance.shape != (n, n):
        raise ValueError(f"head similarity: distance is {distance.shape} for {n} heads")
    order = [int(i) for i in data.get("order") or range(n)]
    if sorted(order) != list(range(n)):
        raise ValueError("head similarity: 'order' is not a permutation of the heads")
    clusters = list(data.get("clusters") or [])
    reps = {int(r) for r in data.get("representatives") or []}
    grid = distance[np.ix_(order, order)]
    labels = [heads[i] for i in order]
    marked = [f"{HEAD_MARK} {heads[i]}" if i in reps else heads[i] for i in order]
    cluster_of = [clusters[i] if len(clusters) == n else None for i in order]
    # category axes named by head (and cluster): the hover reads them, no per-cell data
    names = [
        f"{heads[i]} (cluster {cluster_of[a]})" if cluster_of[a] is not None else heads[i]
        for a, i in enumerate(order)
    ]
    trace = go.Heatmap(
        z=grid,
        x=names,
        y=names,
        zmin=0.0,
        zmax=max(1.0, float(np.nanmax(grid))) if grid.size else 1.0,
        colorscale=SEQUENTIAL_SCALE,
        colorbar=colour_bar("JS distance"),
        hovertemplate="head %{y}<br>head %{x}<br>JS distance %{z:.3f}<extra></extra>",
    )
    fig = go.Figure(trace)
    diagonal = [a for a, i in enumerate(order) if i in reps]
    if diagonal:
        fig.add_scatter(
            x=[names[a] for a in diagonal],
            y=[names[a] for a in diagonal],
            mode="markers",
            name="representative",
            marker=dict(symbol="star", size=11, color=CATEGORICAL[4], line=dict(width=0.8)),
            text=[heads[order[a]] for a in diagonal],
            hovertemplate="representative %{text}<extra></extra>",
        )
    for start, stop in _blocks(cluster_of):
        fig.add_shape(
            type="rect",
            x0=start - 0.5,
            x1=stop - 0.5,
            y0=start - 0.5,
            y1=stop - 0.5,
            line=dict(color="#222222", width=1.5),
            fillcolor="rgba(0,0,0,0)",
        )
    measure = data.get("measure") or "Jensen-Shannon distance of attention"
    light_layout(fig, aspect=1.0, title=title or f"head similarity · {measure}")
    ticks: dict[str, Any] = dict(showgrid=False, automargin=True, type="category")
    if n > 64:
        ticks |= dict(showticklabels=False)
    if n <= 64:
        ticks |= dict(tickmode="array", tickvals=names)
    fig.update_xaxes(
        title_text="head (layer.head)",
        range=[-0.5, n - 0.5],
        tickangle=-90 if n > 16 else 0,
        **ticks,
        **(dict(ticktext=labels) if n <= 64 else {}),
    )
    fig.update_yaxes(
        title_text="head (layer.head)",
        range=[n - 0.5, -0.5],
        **ticks,
        **(dict(ticktext=marked) if n <= 64 else {}),
    )
    fig.update_layout(
        showlegend=bool(diagonal),
        legend=dict(orientation="h", x=1.0, xanchor="right", y=1.0, yanchor="bottom"),
    )
    return fig


def _blocks(cluster_of: list[Any]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of one cluster along the leaf order (none when unknown)."""
    if not cluster_of or cluster_of[0] is None:
        return []
    out, start = [], 0
    for a in range(1, len(cluster_of) + 1):
        if a == len(cluster_of) or cluster_of[a] != cluster_of[start]:
            out.append((start, a))
            start = a
    return out if len(out) > 1 else []


# -- span ---------------------------------------------------------------------------------------


def span_profile(
    frame: pd.DataFrame, layer: int, head: int, *, title: str | None = None
) -> go.Figure:
    """A head's attention span (the recent window holding the run's coverage of attention)
    against the query position, with the full causal span ``q + 1`` for reference."""
    rows = _head_rows(frame, layer, head, "span")
    rows = rows[rows["position"].notna()]
    if rows.empty:
        raise ValueError(f"no per-position span rows for head {layer}.{head}")
    rows = rows.sort_values("position")
    q = rows["position"].to_numpy(dtype=float)
    fig = go.Figure()
    fig.add_scatter(
        x=q,
        y=q + 1,
        mode="lines",
        name="full causal (q + 1)",
        line=dict(color="#999999", width=1.2, dash="dot"),
        hovertemplate="position %{x}<br>full causal %{y:.0f} tokens<extra></extra>",
    )
    fig.add_scatter(
        x=q,
        y=rows["value"].to_numpy(dtype=float),
        mode="lines",
        name=f"head {layer}.{head}",
        line=dict(color=CATEGORICAL[0], width=1.8),
        hovertemplate="query position %{x}<br>span %{y:.3g} tokens<extra></extra>",
    )
    light_layout(fig, aspect=0.6, title=title or f"head {layer}.{head} · attention span")
    fig.update_xaxes(title_text="query position", showgrid=True, gridcolor=GRID_COLOR)
    fig.update_yaxes(
        title_text="span (tokens)", showgrid=True, gridcolor=GRID_COLOR, rangemode="tozero"
    )
    fig.update_layout(legend=dict(x=0.02, y=0.98, xanchor="left", yanchor="top"))
    return fig


# -- dormancy -----------------------------------------------------------------------------------


def dormancy(
    frame: pd.DataFrame,
    layer: int,
    head: int,
    sink_threshold: float,
    norm_threshold: float,
    *,
    title: str | None = None,
) -> go.Figure:
    """Per prompt: the head's attention mass on sinks (x) against its output norm relative to
    its mean (y). Prompts in the shaded corner (sink mass ≥ ``sink_threshold``, norm ratio ≤
    ``norm_threshold``) are the ones where the head is dormant."""
    rows = _head_rows(frame, layer, head, None)
    rows = rows[rows["prompt"].notna() & rows["metric"].isin(["sink_mass", "output_norm_ratio"])]
    table = rows.pivot_table(index="prompt", columns="metric", values="value", aggfunc="first")
    missing = {"sink_mass", "output_norm_ratio"} - set(table.columns)
    if table.empty or missing:
        what = ", ".join(sorted(missing)) or "sink_mass, output_norm_ratio"
        raise ValueError(f"no per-prompt {what} rows for head {layer}.{head}")
    table = table.dropna()
    x = table["sink_mass"].to_numpy(dtype=float)
    y = table["output_norm_ratio"].to_numpy(dtype=float)
    prompts = table.index.to_numpy(dtype=int)
    dormant = (x >= sink_threshold) & (y <= norm_threshold)
    y_top = max(1.5, float(np.nanmax(y)) * 1.08 if y.size else 1.5)
    fig = go.Figure()
    fig.add_shape(
        type="rect",
        x0=sink_threshold,
        x1=1.0,
        y0=0.0,
        y1=norm_threshold,
        line=dict(width=0),
        fillcolor="rgba(213, 94, 0, 0.22)",
        layer="below",
    )
    fig.add_annotation(
        x=1.0,
        y=norm_threshold,
        xanchor="right",
        yanchor="bottom",
        text="dormant",
        showarrow=False,
        font=dict(size=11, color=CATEGORICAL[1]),
    )
    for mask, name, colour in (
        (~dormant, "active", CATEGORICAL[0]),
        (dormant, "dormant", CATEGORICAL[1]),
    ):
        fig.add_scatter(
            x=x[mask],
            y=y[mask],
            mode="markers",
            name=f"{name} ({int(mask.sum())})",
            marker=dict(color=colour, size=7, opacity=0.85),
            customdata=prompts[mask],
            hovertemplate="prompt %{customdata}<br>sink mass %{x:.3f}"
            "<br>output norm / mean %{y:.3f}<extra>" + name + "</extra>",
        )
    light_layout(fig, aspect=0.75, title=title or f"head {layer}.{head} · dormancy per prompt")
    fig.update_xaxes(
        title_text="attention mass on sinks",
        range=[0, 1.02],
        showgrid=True,
        gridcolor=GRID_COLOR,
    )
    fig.update_yaxes(
        title_text="output norm / head mean",
        range=[0, y_top],
        showgrid=True,
        gridcolor=GRID_COLOR,
    )
    fig.update_layout(showlegend=True, legend=dict(x=0.02, y=0.98, xanchor="left", yanchor="top"))
    return fig


# -- massive activations ------------------------------------------------------------------------


def massive_activations(rows: Sequence[dict[str, Any]], *, title: str | None = None) -> go.Figure:
    """Peak |activation| of the residual stream per layer; the hover gives the peak's ratio to
    the median |x|, its position and its dimension."""
    if not rows:
        raise ValueError("no massive activation rows to draw")
    rows = sorted(rows, key=lambda r: int(r["layer"]))
    layers = [int(r["layer"]) for r in rows]
    custom = [[r.get("ratio"), r.get("position"), r.get("dimension")] for r in rows]
    fig = go.Figure(
        go.Bar(
            x=layers,
            y=[float(r["peak"]) for r in rows],
            marker=dict(color=CATEGORICAL[0]),
            customdata=custom,
            hovertemplate="layer %{x}<br>peak |x| %{y:.4g}<br>%{customdata[0]:.3g}× the median |x|"
            "<br>position %{customdata[1]}, dimension %{customdata[2]}<extra></extra>",
        )
    )
    light_layout(fig, aspect=0.6, title=title or "massive activations · peak |residual| per layer")
    step = 1 if len(layers) <= 24 else max(1, len(layers) // 16)
    fig.update_xaxes(title_text="layer", dtick=step, tick0=0, showgrid=False)
    fig.update_yaxes(title_text="peak |activation|", showgrid=True, gridcolor=GRID_COLOR)
    return fig
