"""Turning a page figure into a paper figure: physical size, paper fonts, tight margins, and
heatmap cells that stay crisp in vector output.

Crisp cells. plotly draws a heatmap as one embedded raster image with one pixel per cell
(``image-rendering: pixelated`` in SVG). PDF has no such hint: Chromium embeds the tiny image
(e.g. 4 × 5 px) and PDF viewers that smooth upscaled images (Preview, pdf.js, many printers)
blur every cell edge across the whole cell. Export therefore upsamples each heatmap by nearest
neighbour — every cell becomes a ``ky × kx`` block of identical pixels — so the raster has about
``CRISP_DPI`` pixels per inch at the printed size. Smoothing can then only soften a band of one
such pixel at each edge (≤ 1/300 in), below what print resolves. The block factors are capped so
the raster stays under ``MAX_RASTER_PIXELS`` (an 80 × 64 grid or a 1,024-token pattern stays a
few MB). Heatmaps with cell text or gaps (token tables) are left alone: their bricks are drawn
individually, not as one cell-per-pixel image.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from app.export.presets import PageSize

CRISP_DPI = 300
MAX_RASTER_PIXELS = 4_000_000
PLOT_FRACTION = 0.8  # share of the figure's width/height the plot area roughly takes
DEFAULT_ASPECT = 0.75


def figure_aspect(fig: go.Figure) -> float:
    meta = fig.layout.meta
    if isinstance(meta, dict) and isinstance(meta.get("aspect"), int | float):
        return float(meta["aspect"])
    return DEFAULT_ASPECT


def block_factors(n_rows: int, n_cols: int, width_in: float, height_in: float) -> tuple[int, int]:
    """Nearest-neighbour upsampling factors ``(ky, kx)`` for an ``n_rows × n_cols`` heatmap."""
    kx = math.ceil(CRISP_DPI * width_in * PLOT_FRACTION / max(n_cols, 1))
    ky = math.ceil(CRISP_DPI * height_in * PLOT_FRACTION / max(n_rows, 1))
    pixels = n_rows * ky * n_cols * kx
    if pixels > MAX_RASTER_PIXELS:
        shrink = math.sqrt(MAX_RASTER_PIXELS / pixels)
        kx, ky = max(1, math.floor(kx * shrink)), max(1, math.floor(ky * shrink))
    return max(1, ky), max(1, kx)


def _upsample_trace(trace: go.Heatmap, width_in: float, height_in: float) -> None:
    if trace.z is None or trace.text is not None or (trace.xgap or trace.ygap):
        return
    if trace.x is not None or trace.y is not None or trace.zsmooth not in (None, False):
        return
    z = np.asarray(trace.z, dtype=np.float32)
    if z.ndim != 2:
        return
    ky, kx = block_factors(z.shape[0], z.shape[1], width_in, height_in)
    if ky == 1 and kx == 1:
        return
    x0 = float(trace.x0 if trace.x0 is not None else 0)
    y0 = float(trace.y0 if trace.y0 is not None else 0)
    dx = float(trace.dx if trace.dx is not None else 1)
    dy = float(trace.dy if trace.dy is not None else 1)
    trace.update(
        z=np.repeat(np.repeat(z, ky, axis=0), kx, axis=1),
        x0=x0 - dx / 2 + dx / (2 * kx),
        dx=dx / kx,
        y0=y0 - dy / 2 + dy / (2 * ky),
        dy=dy / ky,
        customdata=None,
        hovertemplate=None,
        zsmooth=False,
    )


def crisp_heatmaps(fig: go.Figure, width_in: float, height_in: float) -> go.Figure:
    """Upsample every cell-per-pixel heatmap of ``fig`` in place (see the module docstring)."""
    for trace in fig.data:
        if isinstance(trace, go.Heatmap):
            fx = _domain_fraction(fig, "xaxis", trace.xaxis)
            fy = _domain_fraction(fig, "yaxis", trace.yaxis)
            _upsample_trace(trace, width_in * fx, height_in * fy)
    return fig


def _domain_fraction(fig: go.Figure, kind: str, anchor: str | None) -> float:
    """The share of the figure a subplot axis spans (1 for a single plot)."""
    suffix = (anchor or kind[0])[1:]
    axis = fig.layout[f"{kind}{suffix}"]
    domain = axis.domain if axis is not None and axis.domain is not None else (0.0, 1.0)
    return max(0.05, float(domain[1]) - float(domain[0]))


def _scale_fonts(fig: go.Figure, font_px: float) -> None:
    small = round(font_px * 0.9, 2)
    fig.update_annotations(font_size=font_px)
    fig.update_layout(legend=dict(font=dict(size=small)))
    for trace in fig.data:
        textfont = getattr(trace, "textfont", None)
        if textfont is not None and textfont.size is not None:
            trace.textfont.size = small
        if isinstance(trace, go.Heatmap) and trace.colorbar is not None:
            trace.colorbar.update(
                thickness=max(6.0, font_px * 0.9),
                tickfont_size=small,
                title_font_size=font_px,
                xpad=4,
                ypad=0,
                ticklen=2,
                outlinewidth=0,
            )


def paper_figure(fig: go.Figure, size: PageSize, *, keep_title: bool = False) -> go.Figure:
    """A copy of ``fig`` laid out for print at ``size`` (the input figure is not changed)."""
    paper = go.Figure(fig)
    aspect = figure_aspect(paper)
    width_in, height_in = size.width_in, size.resolved_height_in(aspect)
    pad = round(size.font_px * 0.4, 1)
    # subplot titles sit above the plot area and need room of their own
    notes = paper.layout.annotations
    top_labels = any(a.yref in (None, "paper") and (a.y or 0) >= 0.95 for a in notes)
    top = pad + (size.font_px * 1.5 if keep_title or top_labels else 0)
    paper.update_layout(
        width=size.width_px,
        height=height_in * 96.0,
        autosize=False,
        font=dict(family=size.font_family, size=size.font_px, color="black"),
        margin=dict(l=pad, r=pad, b=pad, t=top),
        title=paper.layout.title if keep_title else None,
    )
    axis_style = dict(
        automargin=True,
        title_standoff=size.font_px * 0.3,
        title_font_size=size.font_px,
        tickfont_size=round(size.font_px * 0.9, 2),
        ticklen=3,
        tickwidth=0.75,
        linewidth=0.75,
    )
    paper.update_xaxes(**axis_style)
    paper.update_yaxes(**axis_style)
    paper.update_layout(legend_title_font_size=round(size.font_px * 0.9, 2))
    _scale_fonts(paper, size.font_px)
    return crisp_heatmaps(paper, width_in, height_in)
