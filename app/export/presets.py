"""Paper size presets, output formats and the unit conventions of figure export.

Units: plotly lays figures out in CSS pixels, 96 per inch. Chromium prints 1 px as 0.75 pt,
so a figure laid out ``w_in × 96`` px wide becomes a PDF page exactly ``w_in × 72`` pt wide,
and a font of ``s`` pt is set as ``s / 0.75`` layout px. A PNG at ``dpi`` is rendered at
scale ``dpi / 96``, so its pixel size is ``inches × dpi``.

Chromium quantises PDF page sizes: a page is exactly ``px × 0.75`` pt only when its size in
layout px is a multiple of 8 (1/12 in = 6 pt); otherwise it is off by up to ~0.5 pt (measured
with Chromium 156). Sizes are therefore snapped to a 1/12 in grid — widths down, so a figure
never exceeds the column it was made for; heights to the nearest step. The standard widths
(3.25, 5.5, 6.75 in) are already on the grid.

Presets give a width (and optionally a height) in inches and the font size in points of
figure text. Without a height, the figure's preferred aspect (``layout.meta["aspect"]``,
set by the builders) decides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.export.errors import ExportError

PX_PER_IN = 96.0
PT_PER_PX = 0.75
PT_PER_IN = 72.0
FORMATS = ("svg", "pdf", "png")
DEFAULT_DPI = 300
# Times-compatible faces first: the body font of ACL, ICML and NeurIPS papers.
SERIF = "Times New Roman, Times, Liberation Serif, Nimbus Roman, DejaVu Serif, serif"
SANS = "Helvetica, Arial, Liberation Sans, Nimbus Sans, DejaVu Sans, sans-serif"
FONT_FAMILIES = {"serif": SERIF, "sans": SANS}
SIZE_STEP_IN = 1.0 / 12.0


def snap_down(inches: float) -> float:
    steps = math.floor(inches / SIZE_STEP_IN + 1e-6)
    return max(1, steps) * SIZE_STEP_IN


def snap(inches: float) -> float:
    return max(1, round(inches / SIZE_STEP_IN)) * SIZE_STEP_IN


# Shortest height derived from an aspect ratio; a multiple of the 1/12 in snapping step.
MIN_DERIVED_HEIGHT_IN = 2.0


@dataclass(frozen=True)
class Preset:
    name: str
    width_in: float
    height_in: float | None
    font_size_pt: float
    description: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("column", 3.25, None, 8.0, "one column of a two-column paper (ICML)"),
        Preset("text", 6.75, None, 9.0, "full text width of a two-column paper (ICML)"),
        Preset("text-narrow", 5.5, None, 9.0, "text width of a one-column paper (NeurIPS)"),
        Preset("acl-column", 3.0, None, 8.0, "one ACL column (7.7 cm = 3.03 in)"),
        Preset("acl-text", 6.25, None, 9.0, "ACL full text width (16 cm = 6.3 in)"),
        Preset("slide", 10.0, 5.625, 14.0, "a 16:9 slide"),
    )
}
ALIASES = {"icml-column": "column", "icml-text": "text", "neurips": "text-narrow"}


@dataclass(frozen=True)
class PageSize:
    """The physical size and type of one exported figure."""

    width_in: float
    height_in: float | None
    font_size_pt: float
    font_family: str
    preset: str

    @property
    def width_px(self) -> float:
        return self.width_in * PX_PER_IN

    def height_px(self, aspect: float) -> float:
        return self.resolved_height_in(aspect) * PX_PER_IN

    def resolved_height_in(self, aspect: float) -> float:
        """The given height, else width × the figure's aspect, but never so short that tick
        labels and axis titles no longer fit (a 2-layer head grid at column width would be
        1.67 in and lose its x-axis title)."""
        if self.height_in is not None:
            return self.height_in
        return max(snap(self.width_in * aspect), MIN_DERIVED_HEIGHT_IN)

    @property
    def font_px(self) -> float:
        return self.font_size_pt / PT_PER_PX


def preset_names() -> list[str]:
    return [*PRESETS, *ALIASES]


def check_format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt


def _positive(name: str, value: float | None, upper: float) -> None:
    if value is not None and not 0 < value <= upper:
        raise ExportError(f"{name} must be between 0 and {upper:g}, got {value:g}")


def resolve_size(
    preset: str | None = "column",
    *,
    width_in: float | None = None,
    height_in: float | None = None,
    font_size_pt: float | None = None,
    font: str = "serif",
) -> PageSize:
    """A :class:`PageSize` from a preset name and optional overrides.

    ``preset=None`` or ``"custom"`` needs ``width_in``. ``font`` is ``serif``, ``sans`` or a
    CSS font-family list.
    """
    _positive("--width-in", width_in, 40.0)
    _positive("--height-in", height_in, 40.0)
    _positive("--font-size", font_size_pt, 72.0)
    if preset in (None, "custom"):
        if width_in is None:
            raise ExportError("a custom size needs --width-in (inches)")
        base = Preset("custom", width_in, height_in, 8.0, "custom")
    else:
        key = ALIASES.get(preset, preset)
        if key not in PRESETS:
            raise ExportError(
                f"unknown preset {preset!r}; choose one of: {', '.join(preset_names())}, "
                "or custom with --width-in/--height-in"
            )
        base = PRESETS[key]
    height = height_in if height_in is not None else base.height_in
    return PageSize(
        width_in=snap_down(width_in if width_in is not None else base.width_in),
        height_in=snap(height) if height is not None else None,
        font_size_pt=font_size_pt if font_size_pt is not None else base.font_size_pt,
        font_family=FONT_FAMILIES.get(font, font),
        preset=base.name,
    )
