"""Figures of an ``importance`` run: pruning curves and the gradient-vs-ablation scatter.

Inputs follow what the run stores (``analysis/importance/job.py``):

- ``pruning_curve``: the summary's ``pruning_curve`` dict (``fractions``, ``heads_removed``,
  ``metric_clean``, ``max_metric_drop``, ``prunable`` and ``orders`` of
  ``{order: {"metric" | "loss": {"mean", "std"}, "seeds"}}``) and the run's metric name;
- ``importance_scatter``: a frame of per-head ``layer``, ``head``, ``grad`` and ``ablation``
  (the run's ``grad_importance`` and ``ablation_importance`` rows) and the Spearman ρ.

Builders are pure (data in, figure out) and raise ValueError naming what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.style import AXIS_COLOR, CATEGORICAL, GRID_COLOR, light_layout

# pruning orders in legend order: key, label, colour, marker, dash
ORDERS = (
    ("gradient", "gradient importance", CATEGORICAL[0], "circle", "solid"),
    ("gradient_iterative", "gradient, iterative", CATEGORICAL[2], "triangle-up", "longdash"),
    ("ablation", "ablation importance", CATEGORICAL[1], "square", "dash"),
    ("score", "stored score", CATEGORICAL[3], "x", "dashdot"),
    ("random", "random, mean ± std", "#777777", "diamond", "dot"),
)
CURVE_PANELS = {"metric": "task metric", "loss": "LM loss"}
METRIC_LABELS = {"logit_diff": "logit difference", "prob": "p(correct)"}


def _percent(x: float) -> str:
    return f"{100 * x:.0f}%"


def _panels(curve: dict[str, Any], panels: Sequence[str] | None) -> list[str]:
    orders = curve.get("orders") or {}
    found = [p for p in CURVE_PANELS if any(p in o for o in orders.values())]
    if not found:
        raise ValueError("the pruning curve has no curves to draw")
    if panels is None:
        return found
    unknown = [p for p in panels if p not in found]
    if unknown:
        raise ValueError(
            f"the pruning curve has no {unknown[0]!r} panel; choose one of: " + ", ".join(found)
        )
    return list(panels)


def pruning_curve(
    curve: dict[str, Any],
    *,
    metric: str = "logit_diff",
    panels: Sequence[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """The task metric and the LM loss against the fraction of heads pruned, a line per order
    (random: mean ± std over seeds); the metric panel marks the ≤ X % loss threshold and the
    legend says the fraction each order prunes within it."""
    fractions = np.asarray(curve.get("fractions") or [], dtype=float)
    removed = curve.get("heads_removed") or [None] * fractions.size
    shown = _panels(curve, panels)
    orders: dict[str, dict[str, Any]] = curve["orders"]
    prunable: dict[str, float | None] = curve.get("prunable") or {}
    known = {key for key, *_ in ORDERS}
    styles = list(ORDERS) + [
        (k, k, CATEGORICAL[(5 + i) % len(CATEGORICAL)], "circle", "solid")
        for i, k in enumerate(sorted(set(orders) - known))
    ]
    n = len(shown)
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.12 if n > 1 else 0.0)
    for col, panel in enumerate(shown, start=1):
        label = METRIC_LABELS.get(metric, metric) if panel == "metric" else CURVE_PANELS[panel]
        for key, name, colour, symbol, dash in styles:
            values = orders.get(key, {}).get(panel)
            if values is None:
                continue
            mean = np.asarray(values["mean"], dtype=float)
            if mean.shape != fractions.shape:
                raise ValueError(
                    f"pruning curve {key}/{panel}: {mean.size} values for {fractions.size} points"
                )
            std = np.asarray(values.get("std") or np.zeros_like(mean), dtype=float)
            spread = key == "random" or int(orders[key].get("seeds", 1)) > 1
            kept = prunable.get(key)
            legend = name if kept is None else f"{name} · {_percent(kept)} prunable"
            fig.add_scatter(
                x=fractions,
                y=mean,
                mode="lines+markers",
                name=legend,
                legendgroup=key,
                showlegend=col == 1,
                line=dict(color=colour, width=1.6, dash=dash),
                marker=dict(color=colour, symbol=symbol, size=6),
                error_y=dict(type="data", array=std, visible=True, thickness=1, width=3)
                if spread
                else None,
                customdata=np.column_stack([removed, std]),
                hovertemplate=f"{name}<br>%{{x:.0%}} of heads pruned (%{{customdata[0]}})"
                f"<br>{label} %{{y:.4g}}"
                + (" ± %{customdata[1]:.3g}" if spread else "")
                + "<extra></extra>",
                row=1,
                col=col,
            )
        fig.update_yaxes(title_text=label, row=1, col=col)
        clean, drop = curve.get("metric_clean"), curve.get("max_metric_drop")
        if panel == "metric" and clean is not None and drop is not None and clean > 0:
            fig.add_hline(
                y=(1 - float(drop)) * float(clean),
                line=dict(color=AXIS_COLOR, width=1, dash="dot"),
                annotation_text=f"−{_percent(float(drop))}",
                annotation_position="bottom left",
                row=1,
                col=col,
            )
    light_layout(fig, aspect=0.45 if n > 1 else 0.75, title=title or _title(curve))
    fig.update_xaxes(
        title_text="heads pruned",
        tickformat=".0%",
        range=[-0.04, 1.04],
        showgrid=True,
        gridcolor=GRID_COLOR,
    )
    fig.update_yaxes(showgrid=True, gridcolor=GRID_COLOR)
    fig.update_layout(legend=dict(orientation="h", y=-0.22, x=0.0, xanchor="left"))
    return fig


def _title(curve: dict[str, Any]) -> str:
    heads = curve.get("n_heads")
    return f"pruning {heads} heads" if heads else "pruning curve"


LABELLED = 5  # heads named on the scatter: the most important by either measure


def _most_important(frame: pd.DataFrame, k: int) -> set[str]:
    names = [f"a{int(la)}.h{int(h)}" for la, h in zip(frame["layer"], frame["head"], strict=True)]
    top = set(np.argsort(-frame["grad"].to_numpy(), kind="stable")[:k])
    top |= set(np.argsort(-frame["ablation"].to_numpy(), kind="stable")[:k])
    return {names[i] for i in top}


def importance_scatter(
    frame: pd.DataFrame, *, spearman: float | None = None, title: str | None = None
) -> go.Figure:
    """Gradient importance (x) against ablation importance (y), a point per head coloured by
    layer; the most important heads by either measure are named (every head on hover)."""
    missing = [c for c in ("layer", "head", "grad", "ablation") if c not in frame.columns]
    if missing:
        raise ValueError(f"the importance scatter needs columns {', '.join(missing)}")
    if frame.empty:
        raise ValueError("the importance scatter has no heads to draw")
    fig = go.Figure()
    named = _most_important(frame, LABELLED)
    layers = sorted(int(v) for v in frame["layer"].unique())
    for i, layer in enumerate(layers):
        rows = frame[frame["layer"] == layer]
        heads = [f"a{layer}.h{int(h)}" for h in rows["head"]]
        fig.add_scatter(
            x=rows["grad"],
            y=rows["ablation"],
            mode="markers+text",
            name=f"layer {layer}",
            text=[h if h in named else "" for h in heads],
            customdata=heads,
            textposition="top center",
            textfont=dict(size=10, color=AXIS_COLOR),
            marker=dict(color=CATEGORICAL[i % len(CATEGORICAL)], size=8),
            hovertemplate="head %{customdata}<br>gradient %{x:.4g}<br>ablation %{y:.4g}"
            "<extra></extra>",
        )
    rho = "" if spearman is None else f" · Spearman ρ = {spearman:.2f}"
    light_layout(fig, aspect=0.8, title=title or f"head importance{rho}")
    fig.update_xaxes(title_text="gradient importance  mean |∂L/∂ξ|", showgrid=True,
                     gridcolor=GRID_COLOR, rangemode="tozero")  # fmt: skip
    fig.update_yaxes(title_text="ablation importance  |ΔL|", showgrid=True,
                     gridcolor=GRID_COLOR, rangemode="tozero")  # fmt: skip
    return fig
