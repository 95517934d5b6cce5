"""Figure of a ``path-patch`` run: the sender × receiver grid of path-patching effects.

Input is the summary's ``grid`` (``analysis/path_patching/job.py``): ``senders`` (head names),
``receivers`` (``a{L}.h{H}<q|k|v>`` or ``logits``) and ``values`` (one row per sender, null
where the receiver is not after the sender). The builder is pure and raises ValueError naming
what is missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from app.figures.style import (
    colour_bar,
    colour_limits,
    colour_scale,
    escape_label,
    grid_aspect,
    label_room,
    light_layout,
)


def path_grid(grid: Any, *, title: str | None = None, value: str = "values") -> go.Figure:
    """Heatmap of senders (rows) × single receiver inputs (columns); grey where no path."""
    if not isinstance(grid, dict) or not {"senders", "receivers", value} <= set(grid):
        raise ValueError(f"the path grid needs senders, receivers and {value}")
    senders, receivers = list(grid["senders"]), list(grid["receivers"])
    rows = grid[value]
    if not senders or not receivers:
        raise ValueError("the path grid has no senders or no receivers")
    if len(rows) != len(senders) or any(len(r) != len(receivers) for r in rows):
        raise ValueError(f"the path grid's {value} are not {len(senders)} × {len(receivers)}")
    z = np.array([[np.nan if v is None else float(v) for v in r] for r in rows], dtype=float)
    # keep senders with at least one path (a last-layer head reaches no head receiver)
    keep = ~np.isnan(z).all(axis=1)
    if not keep.any():
        raise ValueError("no sender reaches a receiver in this grid")
    z, senders = z[keep], [s for s, k in zip(senders, keep, strict=True) if k]
    zmin, zmax = colour_limits(z, True)
    y_labels = [escape_label(s) for s in senders]
    x_labels = [escape_label(r) for r in receivers]
    label = "normalised effect" if value == "values" else "metric change"
    fig = go.Figure(
        go.Heatmap(
            z=z, x=x_labels, y=y_labels, zmin=zmin, zmax=zmax, zmid=0.0,
            colorscale=colour_scale(True), colorbar=colour_bar(label),
            hovertemplate="sender %{y}<br>receiver %{x}<br>" + label
            + " %{z:.4g}<extra></extra>",
            hoverongaps=False, xgap=1, ygap=1,
        )
    )  # fmt: skip
    light_layout(fig, aspect=grid_aspect(len(senders), len(receivers)), title=title)
    fig.update_layout(plot_bgcolor="#f2f2f2")
    fig.update_xaxes(title_text="receiver", type="category", tickangle=-60, showgrid=False,
                     automargin=False)  # fmt: skip
    fig.update_yaxes(title_text="sender", type="category", autorange="reversed",
                     showgrid=False, automargin=False)  # fmt: skip
    fig.update_layout(margin=dict(l=label_room(y_labels), b=label_room(x_labels)))
    return fig
