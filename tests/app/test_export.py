"""Figure export through kaleido + system Chromium: every figure kind in every format, checked
as files (SVG/PDF/PNG headers, PDF page size in points = preset × 72, PNG pixels = inches × dpi,
fonts embedded in PDF, crisp heatmap rasters), plus bad input and very large figures.

All renders share the process-wide kaleido server (``shared_renderer``): Chromium starts once.
"""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from app.export import ExportError, figure_to_bytes, resolve_size, write_figure
from app.export.paper import block_factors, paper_figure
from app.export.presets import PRESETS, check_format
from app.export.render import ChromiumNotFound, FigureRenderer, find_chromium, png_with_dpi
from app.figures import circuits, compare, heads, patterns, sae

from .test_figures import EDGES, NODES, head_frame

RNG = np.random.default_rng(0)
TOKENS = ["<bos>", " The", " cat", " sat", " on", " the", " mat", ".", " The", " cat"]


def _pattern(n: int) -> np.ndarray:
    p = np.tril(RNG.random((n, n)))
    return p / p.sum(1, keepdims=True)


def _figures() -> dict[str, go.Figure]:
    dla = head_frame(RNG.normal(size=(4, 6)))
    positions = pd.DataFrame(
        [
            {"metric": "patch_resid", "layer": la, "head": None, "position": p, "value": p - la}
            for la in range(3)
            for p in range(len(TOKENS))
        ]
    )
    curve = {
        "step": [0, 10, 20],
        "mse": [1, 0.5, 0.2],
        "l0": [9, 6, 5],
        "dead_fraction": [0, 0.1, 0.1],
        "explained_variance": [0, 0.6, 0.8],
    }
    shares = pd.DataFrame(
        {"feature": 3, "layer": [0, 0, 1], "head": [0, 1, 2], "share": [0.6, 0.3, 0.1]}
    )
    contexts = [{"tokens": TOKENS[:5], "acts": list(RNG.random(5)), "max": 1.0}] * 3
    return {
        "heatmap": heads.head_heatmap(dla, "dla"),
        "position": heads.position_heatmap(positions, "patch_resid", tokens=TOKENS),
        "pattern": patterns.attention_pattern(_pattern(len(TOKENS)), TOKENS, layer=1, head=2),
        "circuit": circuits.circuit_graph(EDGES, NODES),
        "faithfulness": circuits.faithfulness_curves(
            {"EAP": {"k": [0, 5, 10], "faithfulness": [0, 0.7, 0.95], "area": 0.7}}
        ),
        "roc": circuits.roc_curves({"edge": {"fpr": [0, 0.2, 1], "tpr": [0, 0.8, 1], "auc": 0.8}}),
        "sae-training": sae.training_curves(curve),
        "sae-heads": sae.head_share_bars(shares, 3),
        "sae-contexts": sae.top_contexts(contexts),
        "compare": compare.side_by_side(dla, dla.assign(value=dla.value * 2), "dla"),
        "difference": compare.difference_heatmap(dla, dla.assign(value=dla.value * 2), "dla"),
    }


FIGURES = _figures()


def pdf_page_size(data: bytes) -> tuple[float, float]:
    match = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert match, "no MediaBox in PDF"
    return float(match.group(1)), float(match.group(2))


def png_info(data: bytes) -> tuple[int, int, float | None]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    at = data.find(b"pHYs")
    dpi = struct.unpack(">I", data[at + 4 : at + 8])[0] / 39.37007874 if at > 0 else None
    return width, height, dpi


def pdf_image_sizes(data: bytes) -> list[tuple[int, int]]:
    sizes = []
    for match in re.finditer(rb"<<[^>]*?/Subtype\s*/Image[^>]*>>", data, flags=re.S):
        d = match.group(0)
        w, h = re.search(rb"/Width\s+(\d+)", d), re.search(rb"/Height\s+(\d+)", d)
        sizes.append((int(w.group(1)), int(h.group(1))))
    return sizes


@pytest.mark.parametrize("fmt", ["svg", "pdf", "png"])
@pytest.mark.parametrize("kind", list(FIGURES))
def test_every_figure_kind_in_every_format(kind: str, fmt: str, tmp_path: Path):
    size = resolve_size("column")
    out = write_figure(FIGURES[kind], tmp_path / f"{kind}.{fmt}", size=size, dpi=300)
    data = out.read_bytes()
    aspect = (FIGURES[kind].layout.meta or {})["aspect"]
    height_in = size.resolved_height_in(aspect)
    if fmt == "svg":
        head = data[:2000].decode()
        assert head.startswith("<svg")
        root = re.search(r'<svg[^>]*width="([\d.]+)" height="([\d.]+)"', head)
        assert float(root.group(1)) == 312  # 3.25 in × 96 px/in
        assert float(root.group(2)) == pytest.approx(height_in * 96)
    elif fmt == "pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        width_pt, height_pt = pdf_page_size(data)
        assert width_pt == pytest.approx(3.25 * 72, abs=0.01)  # = preset inches × 72
        assert height_pt == pytest.approx(height_in * 72, abs=0.05)
        assert b"/FontFile" in data  # fonts embedded
    else:
        width, height, dpi = png_info(data)
        assert width == round(3.25 * 300)
        assert height == pytest.approx(height_in * 300, abs=1)
        assert dpi == pytest.approx(300, abs=0.1)


def _ink_box(pgm: bytes) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Height, width, and the rows and columns holding non-white pixels of a binary PGM."""
    header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+255\s", pgm)
    width, height = int(header.group(1)), int(header.group(2))
    gray = np.frombuffer(pgm[header.end() :], dtype=np.uint8).reshape(height, width)
    rows, cols = np.nonzero(gray < 200)
    return height, width, rows, cols


def test_pdf_figure_is_not_cut_at_the_page_edges(tmp_path: Path):
    """The x-axis title and the colour bar labels lie inside the PDF page, as in the PNG."""
    import shutil
    import subprocess

    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed")
    values = np.linspace(0.0, 1.0, 8).reshape(2, 4)  # 2 layers: a short figure at column width
    figure = heads.head_heatmap(head_frame(values, "score"), "score")
    pdf = write_figure(figure, tmp_path / "short.pdf", size=resolve_size("column"))
    pgm = subprocess.run(
        ["pdftoppm", "-r", "144", "-gray", "-singlefile", str(pdf)],
        capture_output=True,
        check=True,
    ).stdout
    height, width, rows, cols = _ink_box(pgm)  # 144 dpi: 0.1 in = 14.4 px
    # The figure starts at the page's top-left corner (margins of a few px, no 0.1 in page
    # margin shifting it) and reaches its bottom and right edges without touching them.
    assert rows.min() < 12 and cols.min() < 12, "figure shifted by a page margin"
    assert height - 12 < rows.max() < height - 2, "the bottom (x-axis title) is cut off"
    assert width - 24 < cols.max() < width - 2, "the right edge (colour bar) is cut off"


@pytest.mark.parametrize("preset", ["text", "text-narrow", "acl-column", "neurips"])
def test_pdf_page_size_equals_each_preset(preset: str):
    size = resolve_size(preset)
    data = figure_to_bytes(FIGURES["roc"], fmt="pdf", preset=preset)
    width_pt, _ = pdf_page_size(data)
    assert width_pt == pytest.approx(size.width_in * 72, abs=0.01)


def test_custom_size_font_and_dpi(tmp_path: Path):
    size = resolve_size("custom", width_in=2.0, height_in=1.5, font_size_pt=7, font="sans")
    pdf = write_figure(FIGURES["heatmap"], tmp_path / "c.pdf", size=size).read_bytes()
    assert pdf_page_size(pdf) == pytest.approx((144.0, 108.0), abs=0.01)
    png = write_figure(FIGURES["heatmap"], tmp_path / "c.png", size=size, dpi=150).read_bytes()
    assert png_info(png)[:2] == (300, 225)
    svg = write_figure(FIGURES["heatmap"], tmp_path / "c.svg", size=size).read_text()
    assert "font-size: 9.33px" in svg  # 7 pt = 9.33 layout px (1 px = 0.75 pt)
    assert "Liberation Sans" in svg or "Helvetica" in svg


def test_heatmap_cells_are_upsampled_for_crisp_vector_output():
    size = resolve_size("column")
    data = figure_to_bytes(FIGURES["heatmap"], fmt="pdf", preset="column")
    grid = np.asarray(FIGURES["heatmap"].data[0].z)
    (img_w, img_h), *_ = pdf_image_sizes(data)
    ky, kx = block_factors(*grid.shape, size.width_in, size.resolved_height_in(0.7))
    assert img_w == grid.shape[1] * kx and img_w >= 300 * size.width_in * 0.5
    assert img_h % grid.shape[0] == 0 and img_h >= 300 * 0.5
    # the upsampled raster is the original grid repeated by blocks: nearest neighbour only
    paper = paper_figure(FIGURES["heatmap"], size)
    z = np.asarray(paper.data[0].z)
    ky, kx = z.shape[0] // grid.shape[0], z.shape[1] // grid.shape[1]
    np.testing.assert_array_equal(z[ky // 2 :: ky, kx // 2 :: kx], grid.astype(np.float32))


def test_page_figure_is_not_changed_by_export():
    before = FIGURES["heatmap"].to_json()
    figure_to_bytes(FIGURES["heatmap"], fmt="svg", preset="column")
    assert FIGURES["heatmap"].to_json() == before


@pytest.mark.slow
def test_very_large_figures_export_within_memory_bounds(tmp_path: Path):
    grid = head_frame(RNG.normal(size=(80, 64)))
    big = heads.head_heatmap(grid, "dla")
    n = 1024
    pattern = patterns.attention_pattern(
        _pattern(n).astype(np.float32), [f"t{i}" for i in range(n)], layer=0, head=0
    )
    size = resolve_size("text")
    for name, fig in (("grid", big), ("pattern", pattern)):
        paper = paper_figure(fig, size)
        z = np.asarray(paper.data[0].z)
        assert z.size <= 4_000_000  # the raster stays a few MB
        start = time.perf_counter()
        out = write_figure(fig, tmp_path / f"{name}.pdf", size=size)
        assert time.perf_counter() - start < 60
        data = out.read_bytes()
        assert pdf_page_size(data)[0] == pytest.approx(6.75 * 72, abs=0.01)
        assert len(data) < 20_000_000
    png = write_figure(big, tmp_path / "grid.png", size=size, dpi=300).read_bytes()
    assert png_info(png)[0] == round(6.75 * 300)


def test_bad_format_and_preset_list_the_valid_ones():
    with pytest.raises(ExportError, match="choose one of: svg, pdf, png"):
        check_format("jpeg")
    with pytest.raises(ExportError, match="unknown preset 'a4'; choose one of: column, text"):
        resolve_size("a4")
    with pytest.raises(ExportError, match="--width-in"):
        resolve_size("custom")
    with pytest.raises(ExportError, match="--width-in must be between"):
        resolve_size("column", width_in=-1)
    assert set(PRESETS) >= {"column", "text", "text-narrow"}
    assert resolve_size("icml-column").width_in == 3.25


def test_bad_output_paths(tmp_path: Path):
    fig = FIGURES["roc"]
    with pytest.raises(ExportError, match="does not exist; create it first"):
        write_figure(fig, tmp_path / "missing" / "f.pdf")
    with pytest.raises(ExportError, match="should end in .pdf"):
        write_figure(fig, tmp_path / "f.png", fmt="pdf")
    with pytest.raises(ExportError, match="is a folder"):
        write_figure(fig, tmp_path, fmt="pdf")
    locked = Path("/sys") if os.geteuid() == 0 else tmp_path / "locked"
    if locked != Path("/sys"):
        locked.mkdir()
        locked.chmod(0o555)
    with pytest.raises(ExportError, match="not writable"):
        write_figure(fig, locked / "f.pdf")
    existing = tmp_path / "keep.pdf"
    existing.write_bytes(b"old")
    with pytest.raises(ExportError):
        write_figure(fig, existing, fmt="pdf", dpi=-5)
    assert existing.read_bytes() == b"old"  # nothing already there is lost


def test_no_chromium_gives_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ChromiumNotFound, match="apt-get install chromium"):
        find_chromium()
    with pytest.raises(ChromiumNotFound, match="apt-get install chromium"):
        FigureRenderer()
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    with pytest.raises(ChromiumNotFound, match="BROWSER_PATH"):
        find_chromium()


def test_png_dpi_chunk_is_inserted_once():
    png = figure_to_bytes(FIGURES["roc"], fmt="png", preset="column", dpi=96)
    again = png_with_dpi(png, 600)
    assert again.count(b"pHYs") == 1 and png_info(again)[2] == pytest.approx(600, abs=0.1)
