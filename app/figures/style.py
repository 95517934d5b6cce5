"""The shared light figure style and the colour-scale rules.

Conventions (DESIGN.md §6):

- Signed effects (DLA, patching, attribution, ablation, differences) use the diverging ``RdBu``
  scale centred at 0 with symmetric limits ``[-m, m]``, ``m = max |value|``.
- Non-negative scores (head-type scores, attention weights, SAE activations) use the sequential
  ``Blues`` scale from 0. Both scales are colour-blind safe.
- A light, uncluttered look: white background, no grid behind heatmaps, thin axis lines, axis
  titles in words (``layer``, ``head``, ``position``).

Builders record a preferred height/width ratio in ``layout.meta["aspect"]`` so that export can
choose a height for a given paper width.
"""

from __future__ import annotations

import html
import math
import unicodedata
from collections.abc import Iterable

import numpy as np
import plotly.graph_objects as go

SIGNED_SCALE = "RdBu"
SEQUENTIAL_SCALE = "Blues"
# Okabe-Ito palette: distinguishable under the common colour-vision deficiencies.
CATEGORICAL = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",
)
AXIS_COLOR = "#444444"
GRID_COLOR = "#e6e6e6"
FONT_FAMILY = "Helvetica, Arial, Liberation Sans, DejaVu Sans, sans-serif"

# Metric names whose values are effects with a sign, even when a run happens to be all positive.
SIGNED_METRIC_PREFIXES = ("dla", "patch_", "path_", "attrib_", "ablate_", "logit_", "diff")


def metric_is_signed(metric: str, values: Iterable[float] | np.ndarray) -> bool:
    """Signed if the metric is an effect by name, or if any value is negative."""
    if metric.startswith(SIGNED_METRIC_PREFIXES):
        return True
    arr = np.asarray(values, dtype=float)
    return bool(arr.size and np.nanmin(arr) < 0)


def colour_limits(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour-axis limits: symmetric around 0 when signed, ``[0, max]`` otherwise."""
    finite = values[np.isfinite(values)] if values.size else values
    if not finite.size:
        return (-1.0, 1.0) if signed else (0.0, 1.0)
    if signed:
        m = float(np.max(np.abs(finite)))
        m = m if m > 0 else 1.0
        return -m, m
    lo = min(0.0, float(np.min(finite)))
    hi = float(np.max(finite))
    return lo, hi if hi > lo else lo + 1.0


def colour_scale(signed: bool) -> str:
    return SIGNED_SCALE if signed else SEQUENTIAL_SCALE


def light_layout(fig: go.Figure, *, aspect: float, title: str | None = None) -> go.Figure:
    """Apply the shared light style and record the preferred aspect ratio (height / width)."""
    fig.update_layout(
        template="simple_white",
        title=dict(text=title, x=0.0, xanchor="left") if title else None,
        font=dict(family=FONT_FAMILY, size=13, color="#222222"),
        paper_bgcolor="white",
        plot_bgcolor="white",
        margin=dict(l=60, r=20, t=50 if title else 20, b=50),
        hoverlabel=dict(font=dict(family=FONT_FAMILY)),
        meta={"aspect": float(aspect)},
    )
    # "allow": no overflow check. Plotly's default ("hide past div") measures every tick label
    # again after each one is placed, a third of the first draw of a large heatmap
    axis_style = dict(
        linecolor=AXIS_COLOR,
        tickcolor=AXIS_COLOR,
        ticks="outside",
        mirror=False,
        ticklabeloverflow="allow",
    )
    fig.update_xaxes(**axis_style)
    fig.update_yaxes(**axis_style)
    return fig


def colour_bar(title: str, *, outline: bool = False) -> dict:
    """The colour bar of a heatmap, titled on its right side."""
    bar: dict = dict(title=dict(text=title, side="right"), thickness=12, ticklabeloverflow="allow")
    if not outline:
        bar["outlinewidth"] = 0
    return bar


def grid_aspect(n_rows: int, n_cols: int, *, lo: float = 0.45, hi: float = 1.3) -> float:
    """A height/width ratio for an ``n_rows × n_cols`` grid, clamped so it stays printable."""
    ratio = (n_rows + 1.5) / (n_cols + 3.0)
    return float(min(hi, max(lo, ratio)))


def tick_step(n: int, max_ticks: int = 16) -> int:
    """A round step so that at most ``max_ticks`` integer ticks are labelled."""
    if n <= max_ticks:
        return 1
    raw = n / max_ticks
    base = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if base * mult >= raw:
            return int(base * mult)
    return int(base * 10)


def escape_label(text: str) -> str:
    """Escape text for plotly's pseudo-HTML labels and make whitespace visible; any other
    control character (a byte-level BPE token may be one raw byte), which plotly cannot draw, is
    written as ``\\xNN``."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("\n", "↵").replace("\t", "⇥")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text.replace(" ", "␣") if text.strip() == "" or text.startswith(" ") else text


FONT_PX = 13  # the light layout's font size
TITLE_ROOM_PX = 42  # axis title, tick marks and padding beside the tick labels


def label_room(labels: Iterable[str], *, least: int = 50) -> int:
    """Pixels that tick labels (plotly pseudo-HTML) need across the axis: an upper estimate
    (0.65 em per character, 1 em for wide East Asian ones) plus room for the axis title.

    Builders use it to fix margins instead of plotly's ``automargin``, which draws a figure twice
    in the browser; export turns ``automargin`` back on for print."""
    widest = max((_em_width(html.unescape(label)) for label in labels), default=0.0)
    return max(least, math.ceil(widest * FONT_PX) + TITLE_ROOM_PX)


def _em_width(text: str) -> float:
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.65 for c in text)
