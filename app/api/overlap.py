"""``Lab.circuit_overlap``'s result: the overlap of circuit runs as DataFrames, and its figures.

The tables come from :mod:`app.services.overlap` (the same reads as ``headlab compare
circuits`` and the Overlap page) and the figures from the figure kinds ``circuit-overlap`` and
``overlap-matrix`` (the same builders as ``headlab export figure A B … --kind …``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from app.api.errors import HeadlabError, api_errors
from app.api.run import _request
from app.export.figure import write_figure
from app.export.presets import DEFAULT_DPI, resolve_size
from app.services.figures import EXPORT_KINDS, run_figure
from app.services.overlap import CircuitOverlap
from app.services.results import ResultsReader
from storage.store import ResultStore

OVERLAP_FIGURES = ("circuit-overlap", "overlap-matrix")


class CircuitOverlapResult:
    """The overlap of two or more circuit runs of one model.

    - ``pairs``: one row per pair of circuits and level (``heads``; ``nodes`` = heads + MLPs):
      sizes, shared, union, ``jaccard``, ``overlap`` (coefficient); rows ``of == "ground
      truths"`` hold the same for the runs' ground truths when every run has one;
    - ``heads``: one row per head of the grid: the circuits holding it and its ``group``
      (``all``, ``some:k``, ``only:<run label>``, ``none``);
    - ``shared_edges``: in-circuit edges of every run, with each run's score;
    - ``ground_truth``: each circuit against its task's ground truth (or why there is none).

    Example::

        found = lab.circuit_overlap([4, 5, 6])
        found.pairs.query("level == 'heads'")[["a", "b", "jaccard", "overlap"]]
        found.figure("circuit-overlap").show()
    """

    def __init__(self, store: ResultStore, data: CircuitOverlap) -> None:
        self._store = store
        self.data = data
        frames = data.frames()
        self.pairs: pd.DataFrame = frames["pairs"]
        self.heads: pd.DataFrame = frames["heads"]
        self.shared_edges: pd.DataFrame = frames["shared_edges"]
        self.ground_truth: pd.DataFrame = frames["ground_truth"]

    def __repr__(self) -> str:
        return f"<CircuitOverlap of runs {', '.join(str(r.id) for r in self.data.runs)}>"

    @property
    def run_ids(self) -> list[int]:
        return [r.id for r in self.data.runs]

    def shared(self, level: str = "heads") -> list[str]:
        """Heads (or, with ``level="nodes"``, heads and MLPs) in every circuit."""
        return self.data.shared(level)

    def specific(self, level: str = "heads") -> dict[str, list[str]]:
        """Per circuit (by label), the heads (or nodes) no other circuit holds."""
        return self.data.specific(level)

    def to_json(self) -> dict[str, Any]:
        return self.data.to_json()

    def figure(self, kind: str = "circuit-overlap", **request: Any) -> go.Figure:
        """``circuit-overlap`` (membership grid) or ``overlap-matrix`` (``level="nodes"`` for
        heads + MLPs), as ``headlab export figure`` draws it."""
        if kind not in OVERLAP_FIGURES:
            raise HeadlabError(
                f"unknown overlap figure {kind!r}; choose one of: {', '.join(OVERLAP_FIGURES)}"
            )
        with api_errors():
            reader = ResultsReader(self._store)
            return run_figure(reader, self.run_ids, kind, _request(request))

    def export_figure(
        self,
        path: str | Path,
        kind: str = "circuit-overlap",
        *,
        preset: str | None = None,
        fmt: str | None = None,
        dpi: float = DEFAULT_DPI,
        **request: Any,
    ) -> Path:
        """Write a paper figure (SVG, PDF or PNG) at a size preset (default: the kind's own).

        Example: ``found.export_figure("overlap.pdf", "overlap-matrix")``
        """
        fig = self.figure(kind, **request)
        with api_errors():
            size = resolve_size(preset or EXPORT_KINDS[kind].preset)
            return write_figure(fig, path, fmt=fmt, size=size, dpi=dpi)
