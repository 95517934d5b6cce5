"""Circuit overlap across tasks: the heads' membership on one layer × head grid, and the
pairwise Jaccard / overlap-coefficient matrices. Pure builders over plain rows.

Membership groups (``analysis.circuits.overlap.category``) get fixed colours: in every
circuit dark blue, in some of them lighter blues (darker = more circuits), task-specific to
one circuit that circuit's own colour (Okabe-Ito), in none a light grey. A legend entry per
group present says what each colour means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.style import (
    CATEGORICAL,
    SEQUENTIAL_SCALE,
    colour_bar,
    escape_label,
    grid_aspect,
    light_layout,
    tick_step,
)

ALL_COLOUR = "#08306b"
SOME_COLOURS = ("#2171b5", "#6baed6", "#9ecae1", "#c6dbef")  # most circuits first
NONE_COLOUR = "#eeeeee"
SPECIFIC_COLOURS = CATEGORICAL[1:5] + CATEGORICAL[6:7] + ("#8c564b", "#7f7f7f")
MEASURE_TITLES = {"jaccard": "Jaccard |A∩B| / |A∪B|", "overlap": "overlap |A∩B| / min(|A|,|B|)"}


def groups(labels: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(group, legend text, colour)`` of every group ``len(labels)`` circuits can make."""
    n = len(labels)
    out = [("all", f"in all {n} circuits (shared)", ALL_COLOUR)]
    for i, k in enumerate(range(n - 1, 1, -1)):
        out.append((f"some:{k}", f"in {k} of {n} circuits", SOME_COLOURS[min(i, 3)]))
    for i, label in enumerate(labels):
        colour = SPECIFIC_COLOURS[i % len(SPECIFIC_COLOURS)]
        out.append((f"only:{label}", f"only in {label} (task-specific)", colour))
    out.append(("none", "in no circuit", NONE_COLOUR))
    return out


def _discrete_scale(colours: list[str]) -> list[list[Any]]:
    """A colour scale giving integer ``z`` = i (of ``len(colours)``) the i-th colour."""
    n = len(colours)
    scale: list[list[Any]] = []
    for i, colour in enumerate(colours):
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    return scale


def membership_grid(
    rows: Sequence[dict[str, Any]],
    n_layers: int,
    n_heads: int,
    labels: Sequence[str],
    *,
    title: str | None = None,
) -> go.Figure:
    """Layer × head grid, each head coloured by the circuits that hold it (``rows``: layer,
    head, group, circuits — ``CircuitOverlap.head_membership``)."""
    if n_layers < 1 or n_heads < 1:
        raise ValueError("circuit overlap: the runs store no attention heads to draw")
    table = groups(labels)
    index = {g: i for i, (g, _, _) in enumerate(table)}
    z = np.full((n_layers, n_heads), index["none"], dtype=float)
    text = np.full((n_layers, n_heads), "in no circuit", dtype=object)
    for row in rows:
        la, h = int(row["layer"]), int(row["head"])
        z[la, h] = index[row["group"]]
        held = [escape_label(c) for c in row["circuits"]]
        text[la, h] = ", ".join(held) if held else "in no circuit"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x0=0,
            dx=1,
            y0=0,
            dy=1,
            zmin=-0.5,
            zmax=len(table) - 0.5,
            colorscale=_discrete_scale([c for _, _, c in table]),
            showscale=False,
            customdata=text,
            hovertemplate="head %{y}.%{x}<br>%{customdata}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    present = {row["group"] for row in rows} | ({"none"} if len(rows) < z.size else set())
    for group, legend, colour in table:
        if group in present:
            fig.add_scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=escape_label(legend),
                marker=dict(symbol="square", size=12, color=colour, line=dict(width=0.5)),
                hoverinfo="skip",
            )
    n_legend = sum(1 for g, _, _ in table if g in present)
    # the legend goes under the grid: room for its rows in the aspect, none taken from the grid
    aspect = grid_aspect(n_layers, n_heads, lo=0.35) + 0.09 * n_legend
    light_layout(fig, aspect=min(aspect, 1.6), title=title)
    fig.update_xaxes(
        title_text="head", showgrid=False, dtick=tick_step(n_heads), tick0=0,
        range=[-0.5, n_heads - 0.5], zeroline=False,
    )  # fmt: skip
    fig.update_yaxes(
        title_text="layer", showgrid=False, dtick=tick_step(n_layers), tick0=0,
        range=[n_layers - 0.5, -0.5], zeroline=False,
    )  # fmt: skip
    fig.update_layout(
        showlegend=True,
        legend=dict(
            title=dict(text="head is", side="top"),
            orientation="v",
            x=0.0,
            xanchor="left",
            y=-0.18,
            yanchor="top",
        ),
    )
    return fig


def overlap_matrix(
    labels: Sequence[str],
    matrices: dict[str, list[list[float | None]]],
    *,
    level: str = "heads",
    title: str | None = None,
) -> go.Figure:
    """One circuits × circuits heatmap per measure (``jaccard``, ``overlap``), values written
    in the cells, on one 0–1 scale; undefined cells (empty circuits) are blank."""
    if len(labels) < 2:
        raise ValueError("the overlap matrix needs two or more circuits")
    names = [escape_label(label) for label in labels]
    ids = [escape_label(label.split(" ", 1)[0]) for label in labels]  # "#12 task" → "#12"
    if len(set(ids)) < len(ids):
        ids = names
    measures = list(matrices)
    fig = make_subplots(
        rows=1,
        cols=len(measures),
        subplot_titles=[MEASURE_TITLES.get(m, m) for m in measures],
        horizontal_spacing=0.06,
    )
    for col, measure in enumerate(measures, start=1):
        grid = np.array(
            [[np.nan if v is None else float(v) for v in row] for row in matrices[measure]]
        )
        fig.add_heatmap(
            z=grid,
            x=ids,
            y=names,
            zmin=0.0,
            zmax=1.0,
            colorscale=SEQUENTIAL_SCALE,
            showscale=col == len(measures),
            colorbar=colour_bar(f"{level} overlap"),
            text=[["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in grid],
            texttemplate="%{text}",
            hovertemplate=f"%{{y}}<br>%{{x}}<br>{measure} %{{z:.3f}}<extra></extra>",
            hoverongaps=False,
            row=1,
            col=col,
        )
    light_layout(fig, aspect=min(0.9, max(0.45, 1.1 / len(measures))), title=title)
    fig.update_xaxes(showgrid=False, type="category", automargin=True)
    fig.update_yaxes(showgrid=False, type="category", autorange="reversed", automargin=True)
    for col in range(2, len(measures) + 1):  # one set of row labels, on the left
        fig.update_yaxes(showticklabels=False, row=1, col=col)
    fig.update_annotations(font_size=12)
    return fig
