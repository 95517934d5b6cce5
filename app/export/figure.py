"""Exporting one figure: paper layout (``app.export.paper``) + rendering (``app.export.render``)
+ a safe write to the output path.

An output path is checked before any rendering: its folder must exist and be writable, and its
suffix, when given, must match the format. The file is written to a temporary sibling and
renamed, so a failed export never leaves a truncated file or clobbers an existing one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import plotly.graph_objects as go

from app.export.errors import ExportError
from app.export.paper import figure_aspect, paper_figure
from app.export.presets import DEFAULT_DPI, PageSize, check_format, resolve_size
from app.export.render import FigureRenderer, shared_renderer


def _can_write(folder: Path) -> bool:
    """Probe by creating a file: permission bits alone mislead (root, read-only mounts)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".headlab-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def check_output_path(path: Path | str, *, suffixes: tuple[str, ...] | None = None) -> Path:
    """The resolved output path; raises :class:`ExportError` if it cannot be written."""
    out = Path(path).expanduser()
    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ExportError(f"output path {out} is a folder; give a file name")
    if not folder.is_dir():
        raise ExportError(f"output folder {folder} does not exist; create it first")
    if not _can_write(folder):
        raise ExportError(f"output folder {folder} is not writable; choose another --out")
    if suffixes is not None and out.suffix.lower().lstrip(".") not in suffixes:
        raise ExportError(f"output file {out.name} should end in .{' or .'.join(suffixes)}")
    return out.resolve()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; an exported figure is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_paper_figure(
    fig: go.Figure,
    fmt: str,
    size: PageSize,
    *,
    dpi: float = DEFAULT_DPI,
    keep_title: bool = False,
    renderer: FigureRenderer | None = None,
) -> bytes:
    """Bytes of ``fig`` laid out for print at ``size`` in format ``fmt``."""
    fmt = check_format(fmt)
    if not 10 <= dpi <= 2400:
        raise ExportError(f"--dpi must be between 10 and 2400, got {dpi:g}")
    paper = paper_figure(fig, size, keep_title=keep_title)
    aspect = figure_aspect(fig)
    renderer = renderer or shared_renderer()
    return renderer.render(
        paper, fmt, width_px=size.width_px, height_px=size.height_px(aspect), dpi=dpi
    )


def figure_to_bytes(
    figure: go.Figure | dict, *, fmt: str, preset: str = "column", dpi: float = DEFAULT_DPI
) -> bytes:
    """The web app's entry point: a figure (object or dict) as ``fmt`` bytes at a preset."""
    fig = figure if isinstance(figure, go.Figure) else go.Figure(figure)
    return render_paper_figure(fig, fmt, resolve_size(preset), dpi=dpi)


def write_figure(
    fig: go.Figure,
    path: Path | str,
    *,
    fmt: str | None = None,
    size: PageSize | None = None,
    dpi: float = DEFAULT_DPI,
    keep_title: bool = False,
    renderer: FigureRenderer | None = None,
) -> Path:
    """Write ``fig`` to ``path`` (format from ``fmt`` or the suffix); returns the path."""
    fmt = check_format(fmt or Path(path).suffix or "?")
    out = check_output_path(path, suffixes=(fmt,))
    data = render_paper_figure(
        fig,
        fmt,
        size or resolve_size("column"),
        dpi=dpi,
        keep_title=keep_title,
        renderer=renderer,
    )
    write_bytes_atomic(out, data)
    return out
