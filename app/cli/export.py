"""``headlab export``: paper-ready figures, data tables and reproducibility bundles of a run.

- ``headlab export figure RUN --kind heatmap --metric M --format pdf --preset column --out f.pdf``
- ``headlab export data RUN --format csv|parquet|json --out FILE``
- ``headlab export bundle RUN --out run.zip``

Arguments are validated (format, preset, output folder) before the store is read and before
Chromium starts, so a typo fails in milliseconds with the list of valid choices.
"""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli.context import open_store, store_errors
from app.cli.output import emit_json
from app.export.errors import ExportError
from app.export.presets import DEFAULT_DPI, PageSize, check_format, resolve_size

app = typer.Typer(help="Export figures, data and bundles of a run.", no_args_is_help=True)

OUT = typer.Option(..., "--out", "-o", help="Output file.")
PRESET = typer.Option(
    "column",
    help="column (3.25 in), text (6.75 in), text-narrow (5.5 in), acl-column, "
    "acl-text, slide, or custom with --width-in.",
)
WIDTH = typer.Option(None, "--width-in", help="Width in inches (overrides the preset).")
HEIGHT = typer.Option(None, "--height-in", help="Height in inches (default: the figure's aspect).")
FONT_SIZE = typer.Option(None, "--font-size", help="Font size in points (default: the preset's).")
FONT = typer.Option("serif", help="serif (Times-like), sans, or a CSS font-family list.")
DPI = typer.Option(DEFAULT_DPI, help="PNG resolution in dots per inch.")
JSON = typer.Option(False, "--json", help="Print one JSON object.")


def _format_for(fmt: str | None, out: Path, allowed: tuple[str, ...]) -> str:
    chosen = (fmt or out.suffix.lstrip(".")).lower()
    if not chosen:
        raise ExportError(f"give --format ({', '.join(allowed)}) or an --out file with a suffix")
    if chosen not in allowed:
        raise ExportError(f"unknown format {chosen!r}; choose one of: {', '.join(allowed)}")
    return chosen


def parse_head(text: str) -> tuple[int, int]:
    """``"1.2"`` → ``(1, 2)``; raises :class:`ExportError` on anything else."""
    parts = text.strip().split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ExportError(f"--head must be LAYER.HEAD such as 1.2, got {text!r}")
    return int(parts[0]), int(parts[1])


def _size(
    preset: str, width_in: float | None, height_in: float | None, font_size: float | None, font: str
) -> PageSize:
    return resolve_size(
        preset, width_in=width_in, height_in=height_in, font_size_pt=font_size, font=font
    )


@app.command("figure")
def figure(
    run: list[int] = typer.Argument(
        ..., help="Run id; several for kinds that draw several (circuit-overlap, overlap-matrix)."
    ),
    kind: str = typer.Option(
        ..., "--kind", help="Figure kind, e.g. heatmap, pattern, circuit (a wrong one lists all)."
    ),
    metric: str | None = typer.Option(None, help="Metric to draw (heatmap, position)."),
    head: str | None = typer.Option(None, help="LAYER.HEAD, e.g. 1.2 (pattern, position)."),
    prompt: int = typer.Option(0, min=0, help="Prompt index (pattern, position tokens)."),
    feature: int | None = typer.Option(None, help="SAE feature (sae-heads, sae-contexts)."),
    top_k: int | None = typer.Option(None, "--top-k", min=0, help="Circuit: k largest edges."),
    threshold: float | None = typer.Option(None, help="Circuit: edges with |score| >= this."),
    level: str | None = typer.Option(None, help="Overlap matrix: heads (default) or nodes."),
    fmt: str | None = typer.Option(None, "--format", help="svg, pdf or png (default: --out)."),
    preset: str | None = typer.Option(
        None, help="Paper size preset (default: the kind's own, column or text); see bundle."
    ),
    width_in: float | None = WIDTH,
    height_in: float | None = HEIGHT,
    font_size: float | None = FONT_SIZE,
    font: str = FONT,
    dpi: float = DPI,
    title: bool = typer.Option(False, "--title/--no-title", help="Keep the figure title."),
    out: Path = OUT,
    json_out: bool = JSON,
) -> None:
    """Write one figure of a run as SVG, PDF or PNG at a paper size."""
    from app.export.figure import check_output_path, write_figure
    from app.services.figures import FigureRequest, export_kind, run_figure
    from app.services.results import ResultsReader

    with store_errors():
        chosen = check_format(_format_for(fmt, out, ("svg", "pdf", "png")))
        figure_kind = export_kind(kind)
        size = _size(preset or figure_kind.preset, width_in, height_in, font_size, font)
        request = FigureRequest(
            metric=metric,
            head=parse_head(head) if head else None,
            prompt=prompt,
            feature=feature,
            top_k=top_k,
            threshold=threshold,
            level=level,
        )
        check_output_path(out, suffixes=(chosen,))
        fig = run_figure(ResultsReader(open_store()), run, kind, request)
        path = write_figure(fig, out, fmt=chosen, size=size, dpi=dpi, keep_title=title)
    if json_out:
        emit_json(
            {
                "path": str(path),
                "format": chosen,
                "bytes": path.stat().st_size,
                "width_in": size.width_in,
                "preset": size.preset,
            }
        )
    else:
        typer.echo(f"wrote {path}")


@app.command("data")
def data(
    run: int = typer.Argument(..., help="Run id."),
    fmt: str | None = typer.Option(None, "--format", help="csv, parquet or json."),
    table: str = typer.Option("heads", help="heads, edges or nodes (csv/parquet; json has all)."),
    out: Path = OUT,
    json_out: bool = JSON,
) -> None:
    """Write a run's results as CSV, Parquet or JSON."""
    from app.export.data import DATA_FORMATS, write_data
    from app.export.figure import check_output_path

    with store_errors():
        chosen = _format_for(fmt, out, DATA_FORMATS)
        check_output_path(out)
        store = open_store()
        path = write_data(store, run, chosen, out, table)
    if json_out:
        emit_json({"path": str(path), "format": chosen, "bytes": path.stat().st_size})
    else:
        typer.echo(f"wrote {path}")


@app.command("bundle")
def bundle(
    run: int = typer.Argument(..., help="Run id."),
    out: Path = OUT,
    formats: str = typer.Option("pdf,png", help="Figure formats, comma-separated."),
    preset: str = PRESET,
    width_in: float | None = WIDTH,
    font_size: float | None = FONT_SIZE,
    font: str = FONT,
    dpi: float = DPI,
    max_artifact_mb: float = typer.Option(20.0, help="Leave out artifact files larger than this."),
    json_out: bool = JSON,
) -> None:
    """Write a zip with the run's figures, data and manifest.json for reproduction."""
    from app.export.bundle import write_bundle
    from app.export.figure import check_output_path

    with store_errors():
        chosen = tuple(check_format(f) for f in formats.split(",") if f.strip())
        size = _size(preset, width_in, None, font_size, font)
        check_output_path(out, suffixes=("zip",))
        store = open_store()
        store.get_run(run)
        path = write_bundle(
            store, run, out, formats=chosen, size=size, dpi=dpi, max_artifact_mb=max_artifact_mb
        )
    if json_out:
        emit_json({"path": str(path), "bytes": path.stat().st_size})
    else:
        typer.echo(f"wrote {path}")
