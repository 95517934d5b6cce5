"""A run as seen from Python: its record, its result tables as DataFrames, its figures.

``Run`` is a thin handle over the store: every table comes from the same store reads as
``headlab runs results`` and ``headlab export data``, every figure from the same builders as
``headlab export figure`` (the figure kinds of ``app.services.figures``), and attention
patterns from the same reader as the Heads page (``app.services.results``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.api.errors import HeadlabError, RunFailed, api_errors
from app.export.bundle import write_bundle
from app.export.data import run_table
from app.export.figure import write_figure
from app.export.presets import DEFAULT_DPI, resolve_size
from app.services import sae
from app.services.figures import EXPORT_KINDS as FIGURE_KINDS
from app.services.figures import FigureRequest, run_figure
from app.services.results import ResultsReader
from storage.errors import NotFound
from storage.grids import aggregate_rows, position_rows
from storage.records import RunRecord, RunStatus

if TYPE_CHECKING:
    from app.api.lab import Lab


@dataclass(frozen=True)
class AttentionPattern:
    """One head's attention on one prompt: ``matrix[query, key]`` (rows sum to 1)."""

    layer: int
    head: int
    prompt: int
    matrix: np.ndarray
    tokens: list[str]

    def frame(self) -> pd.DataFrame:
        """The matrix as a DataFrame, query tokens as rows, key tokens as columns."""
        labels = [f"{i}:{t}" for i, t in enumerate(self.tokens)]
        return pd.DataFrame(self.matrix, index=labels, columns=labels)


class Run:
    """A stored run. Get one from ``lab.run(...)``, ``lab.get_run(id)`` or ``lab.runs()``.

    Example::

        run = lab.get_run(3)
        run.heads().sort_values("value").tail()
    """

    def __init__(self, lab: Lab, record: RunRecord) -> None:
        self._lab = lab
        self.record = record

    def __repr__(self) -> str:
        r = self.record
        return f"<Run {r.id} {r.kind} {r.status.value} on {r.model_spec}>"

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def status(self) -> RunStatus:
        return self.record.status

    @property
    def config(self) -> dict[str, Any]:
        return self.record.config

    @property
    def summary(self) -> dict[str, Any]:
        """What the run measured beyond its tables (AUCs, faithfulness, curves…)."""
        return self.record.summary

    def refresh(self) -> Run:
        """Re-read the record from the store (status, progress, summary)."""
        with api_errors():
            self.record = self._lab.store.get_run(self.id)
        return self

    def wait(self, progress: bool = True) -> Run:
        """Wait until a worker has finished this run (e.g. after ``lab.run(..., wait=False)``).

        Example: ``lab.run("heads", "zoo:induction-2l", "ind32", wait=False).wait()``
        """
        self.record = self._lab.watch(self.id, progress)
        return self.checked()

    def checked(self) -> Run:
        """This run, or :class:`RunFailed` if it ended FAILED or CANCELLED."""
        if self.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            reason = f": {self.record.error}" if self.record.error else ""
            raise RunFailed(f"run {self.id} ({self.kind}) {self.status.value}{reason}", self.id)
        return self

    def cancel(self) -> Run:
        """Ask the run to stop (a queued run stops at once)."""
        with api_errors():
            self.record = self._lab.store.request_cancel(self.id)
        return self

    # -- tables -------------------------------------------------------------------------

    def table(self, name: str) -> pd.DataFrame:
        """``heads`` (every per-head row), ``edges`` or ``nodes``, as in ``runs results``."""
        with api_errors():
            return run_table(self._lab.store, self.id, name)

    def heads(self, metric: str | None = None) -> pd.DataFrame:
        """Aggregate per-head values: columns metric, layer, head, value (layer-level rows,
        e.g. ``patch_resid``, have ``head`` NA).

        Example: ``run.heads("induction_score").nlargest(3, "value")``
        """
        rows = self.table("heads")
        rows = aggregate_rows(rows)
        if metric is not None:
            self._require_metric(metric, rows)
            rows = rows[rows["metric"] == metric]
        return rows.drop(columns=["position", "prompt"]).reset_index(drop=True)

    def head_grid(self, metric: str) -> pd.DataFrame:
        """One metric as a layer × head grid (rows: layer, columns: head).

        Example: ``run.head_grid("prev_token_score").style.background_gradient()``
        """
        rows = self.heads(metric).dropna(subset=["head"])
        return rows.pivot(index="layer", columns="head", values="value")

    def positions(self, metric: str | None = None) -> pd.DataFrame:
        """Per-position rows: metric, layer, head, position, prompt, value.

        Example: ``run.positions("patch_z").groupby("position")["value"].sum()``
        """
        rows = self.table("heads")
        rows = position_rows(rows)
        if metric is not None:
            self._require_metric(metric, rows)
            rows = rows[rows["metric"] == metric]
        return rows.reset_index(drop=True)

    def metrics(self) -> list[str]:
        """The metrics this run stored."""
        with api_errors():
            return self._lab.store.metrics(self.id)

    def edges(self) -> pd.DataFrame:
        """A circuit run's edges: source, target, score, in_circuit.

        Example: ``run.edges().query("in_circuit")``
        """
        return self.table("edges")

    def nodes(self) -> pd.DataFrame:
        """A circuit run's nodes: name, layer, head, score, in_circuit."""
        return self.table("nodes")

    def features(self) -> pd.DataFrame:
        """An SAE run's features: frequency, activations and dominant head per feature.

        Example: ``run.features().sort_values("frequency").tail()``
        """
        try:
            return sae.features(self._lab.store, self.id).copy()
        except NotFound:
            raise HeadlabError(f"run {self.id} ({self.kind}) has no SAE features") from None

    def attention(self, layer: int, head: int, prompt: int = 0) -> AttentionPattern:
        """Head ``layer.head``'s attention pattern on prompt ``prompt`` (this run's patterns,
        else those of the newest ``heads`` run on the same model).

        Example: ``run.attention(1, 2).frame().round(2)``
        """
        reader = ResultsReader(self._lab.store)
        with api_errors():
            source = reader.pattern_run(self.record)
            if source is None:
                raise HeadlabError(
                    f"no attention patterns for {self.record.model_spec}: run `heads` on it first"
                )
            matrix, tokens = reader.pattern(source.id, prompt, layer, head)
        return AttentionPattern(layer, head, prompt, matrix, tokens)

    def _require_metric(self, metric: str, rows: pd.DataFrame) -> None:
        known = sorted(rows["metric"].unique())
        if metric not in known:
            raise HeadlabError(
                f"run {self.id} has no metric {metric!r} here; choose one of: "
                + (", ".join(known) or "(none)")
            )

    # -- figures ------------------------------------------------------------------------

    def figure(self, kind: str = "heatmap", **request: Any) -> go.Figure:
        """A plotly figure of this run, as ``headlab export figure`` draws it. ``kind`` is one
        of ``headlab.FIGURE_KINDS``; ``request`` takes metric, head=(layer, head), prompt,
        feature, top_k, threshold.

        Example: ``run.figure("heatmap", metric="induction_score").show()``
        """
        with api_errors():
            return run_figure(ResultsReader(self._lab.store), self.id, kind, _request(request))

    def export_figure(
        self,
        path: str | Path,
        kind: str = "heatmap",
        *,
        preset: str | None = None,
        fmt: str | None = None,
        dpi: float = DEFAULT_DPI,
        **request: Any,
    ) -> Path:
        """Write a paper figure (SVG, PDF or PNG from the suffix or ``fmt``) at a size preset
        (default: the kind's own).

        Example: ``run.export_figure("fig.pdf", "heatmap", metric="patch_z")``
        """
        fig = self.figure(kind, **request)
        with api_errors():
            size = resolve_size(preset or FIGURE_KINDS[kind].preset)
            return write_figure(fig, path, fmt=fmt, size=size, dpi=dpi)

    def export_bundle(self, path: str | Path) -> Path:
        """Write the run's bundle (figures, data tables, manifest) to a ``.zip``.

        Example: ``run.export_bundle("run7.zip")``
        """
        with api_errors():
            return write_bundle(self._lab.store, self.id, path)


def _request(values: dict[str, Any]) -> FigureRequest:
    known = set(FigureRequest.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise HeadlabError(
            f"unknown figure option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    head = values.get("head")
    if head is not None:
        values = {**values, "head": (int(head[0]), int(head[1]))}
    return FigureRequest(**values)


__all__ = ["FIGURE_KINDS", "AttentionPattern", "Run"]
