"""Paper-ready export: figures as SVG/PDF/PNG through kaleido, data as CSV/Parquet/JSON, and
reproducibility bundles (figures + data + ``manifest.json``) of a run.

Importing this package starts nothing; Chromium starts on the first render.
"""

from app.export.errors import ExportError
from app.export.figure import figure_to_bytes, write_figure
from app.export.presets import FORMATS, PRESETS, preset_names, resolve_size

__all__ = [
    "FORMATS",
    "PRESETS",
    "ExportError",
    "figure_to_bytes",
    "preset_names",
    "resolve_size",
    "write_figure",
]
