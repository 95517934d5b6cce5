"""Rendering plotly figures to SVG/PDF/PNG bytes with kaleido (≥ 1) driving system Chromium.

One :class:`FigureRenderer` owns one kaleido server (a Chromium process with one tab) on a
private asyncio loop in a background thread; every render of a batch (a bundle, a test
session, the web app's downloads) goes through it, so Chromium starts once (~2–5 s) and each
figure then costs tens to hundreds of milliseconds. ``shared_renderer()`` gives the process-wide
instance, closed at exit.

Chromium is found at ``BROWSER_PATH`` (kaleido's own variable) or on ``PATH`` as
``chromium``/``chromium-browser``/``google-chrome``. MathJax is disabled (it would be fetched
from a CDN; figures use plain text). PNGs get a ``pHYs`` chunk with their DPI so that LaTeX
places them at their physical size.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import struct
import threading
import zlib
from concurrent.futures import TimeoutError as FutureTimeout

import plotly.graph_objects as go

from app.export.errors import ExportError
from app.export.presets import FORMATS, PX_PER_IN, check_format

log = logging.getLogger(__name__)

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = "install it with `apt-get install chromium` (or set BROWSER_PATH to a Chrome binary)"
INCH_PER_METRE = 39.37007874


def _print_pdf_edge_to_edge() -> None:
    """Make kaleido print PDFs without page margins.

    kaleido sizes the PDF page to the figure (CSS ``@page``) but calls ``Page.printToPDF`` with
    0.1 in margins, which shifts the figure down and right by 0.1 in and cuts off its bottom and
    right edge (the x-axis title of a short figure disappears). Its tab looks ``print_pdf`` up
    on the module at call time, so replacing that one function fixes every PDF.
    """
    try:
        from kaleido._kaleido_tab import _devtools_utils as devtools
    except ImportError:  # a kaleido layout we do not know: keep its own behaviour
        log.warning("kaleido internals changed; PDF pages keep kaleido's 0.1 in margins")
        return
    raise_error = devtools._raise_error

    async def print_pdf(tab):  # same parameters as kaleido's, margins 0
        params = {
            "printBackground": True,
            "marginTop": 0,
            "marginBottom": 0,
            "marginLeft": 0,
            "marginRight": 0,
            "preferCSSPageSize": True,
            "pageRanges": "1",
        }
        response = await tab.send_command("Page.printToPDF", params=params)
        raise_error(response)
        return response.get("result", {}).get("data")

    devtools.print_pdf = print_pdf


_print_pdf_edge_to_edge()


class ChromiumNotFound(ExportError):
    """No Chromium/Chrome binary to render figures with."""


def find_chromium() -> str:
    """The Chromium binary kaleido should drive; raises :class:`ChromiumNotFound` with the fix."""
    explicit = os.environ.get("BROWSER_PATH")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise ChromiumNotFound(f"BROWSER_PATH={explicit!r} is not an executable; {INSTALL_HINT}")
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ChromiumNotFound(f"figure export needs Chromium and none was found; {INSTALL_HINT}")


def png_with_dpi(png: bytes, dpi: float) -> bytes:
    """Insert (or replace) the PNG ``pHYs`` chunk so the image carries its DPI."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ExportError("renderer returned something that is not a PNG")
    ppm = round(dpi * INCH_PER_METRE)
    body = b"pHYs" + struct.pack(">IIB", ppm, ppm, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    out, pos, inserted = [png[:8]], 8, False
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind != b"pHYs":
            out.append(png[pos:end])
        if kind == b"IHDR" and not inserted:
            out.append(chunk)
            inserted = True
        pos = end
    return b"".join(out)


class FigureRenderer:
    """A reusable kaleido server. Use as a context manager or call :meth:`close`."""

    def __init__(self, *, browser_path: str | None = None, timeout_s: float = 180.0) -> None:
        self.browser_path = browser_path or find_chromium()
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kaleido-loop", daemon=True
        )
        self._thread.start()
        self._lock = threading.Lock()
        self._kaleido = None
        try:
            self._kaleido = self._call(self._open(), timeout=self.timeout_s)
        except BaseException:
            self._stop_loop()
            raise

    async def _open(self):
        import kaleido  # imported late: it starts nothing, but pulls in choreographer

        k = kaleido.Kaleido(n=1, timeout=self.timeout_s, path=self.browser_path, mathjax=False)
        await k.open()
        return k

    def _call(self, coro, *, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()
            raise ExportError(f"figure rendering took longer than {timeout:g} s") from None

    def render(
        self, fig: go.Figure, fmt: str, *, width_px: float, height_px: float, dpi: float = 300
    ) -> bytes:
        """Bytes of ``fig`` as ``fmt`` at the given layout size (``dpi`` only affects PNG)."""
        fmt = check_format(fmt)
        if self._kaleido is None:
            raise ExportError("the renderer is closed")
        scale = dpi / PX_PER_IN if fmt == "png" else 1.0
        opts = {"format": fmt, "width": width_px, "height": height_px, "scale": scale}
        with self._lock:
            data = self._call(self._kaleido.calc_fig(fig, opts=opts), timeout=self.timeout_s + 5)
        if fmt == "png":
            data = png_with_dpi(data, dpi)
        return data

    def close(self) -> None:
        if self._kaleido is not None:
            kaleido, self._kaleido = self._kaleido, None
            try:
                self._call(kaleido.close(), timeout=30)
            except Exception as exc:  # noqa: BLE001 — closing must not mask the real error
                log.warning("closing kaleido failed: %s", exc)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> FigureRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: FigureRenderer | None = None
_shared_lock = threading.Lock()


def shared_renderer() -> FigureRenderer:
    """The process-wide renderer (started on first use, closed at interpreter exit)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared._kaleido is None:
            _shared = FigureRenderer()
            atexit.register(_shared.close)
        return _shared


__all__ = ["FORMATS", "ChromiumNotFound", "FigureRenderer", "find_chromium", "shared_renderer"]
