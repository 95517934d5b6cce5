"""Per-head results as pages, export and the API read them: the one place their row convention
lives.

A per-head result row has ``metric, layer, head, position, prompt, value``:

- *aggregate* rows have ``position`` and ``prompt`` both null — the run's value for a head
  (``head`` set) or for a layer-level component such as ``patch_resid`` (``head`` null);
- *per-position* rows have ``position`` set and ``prompt`` null — a value per token position,
  per head or (``head`` null) per layer;
- rows with ``prompt`` set are per prompt, kept for tables and downloads.

:func:`split_results` sorts a run's rows into these once; :class:`HeadGrid` and
:class:`PositionGrid` are what a heatmap draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from storage.errors import NotFound

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class HeadGrid:
    """One metric's aggregate value per head: ``frame`` has int ``layer``, ``head``, ``value``."""

    run_id: int
    metric: str
    frame: pd.DataFrame

    def value(self, layer: int, head: int) -> float | None:
        hit = self.frame[(self.frame["layer"] == layer) & (self.frame["head"] == head)]
        return None if hit.empty else float(hit["value"].iloc[0])

    def rank(self, value: float) -> int:
        """1 + the number of heads whose |value| is larger."""
        return int((self.frame["value"].abs() > abs(value)).sum()) + 1


MEAN_OVER_HEADS = frozenset({"span"})  # per-position metrics a layer's row averages


@dataclass(frozen=True)
class PositionGrid:
    """One metric per layer × position: ``frame`` has int ``layer``, ``position`` and ``value``.

    ``head`` is the head it shows, or None: values per layer (summed over heads when the
    metric is stored per head, see ``per_head`` — averaged for the metrics in
    ``MEAN_OVER_HEADS``, which are sizes, not effects that add up)."""

    run_id: int
    metric: str
    head: tuple[int, int] | None
    per_head: bool
    frame: pd.DataFrame


@dataclass(frozen=True)
class ResultTables:
    """One run's per-head rows, sorted by the convention above for fast lookups."""

    run_id: int
    aggregate: dict[str, pd.DataFrame]  # metric -> (layer, head, value), head not null
    layer_level: dict[str, pd.DataFrame]  # metric -> (layer, value), head null
    per_position: dict[str, pd.DataFrame]  # metric -> (layer, head, position, value)

    def head_metrics(self) -> list[str]:
        return sorted(self.aggregate)

    def position_metrics(self) -> list[str]:
        return sorted(self.per_position)

    def head_grid(self, metric: str) -> HeadGrid:
        if metric not in self.aggregate:
            raise NotFound(f"run {self.run_id} has no per-head metric {metric!r}")
        return HeadGrid(self.run_id, metric, self.aggregate[metric])

    def position_grid(self, metric: str, head: tuple[int, int] | None = None) -> PositionGrid:
        rows = self.per_position.get(metric)
        if rows is None:
            raise NotFound(f"run {self.run_id} has no per-position metric {metric!r}")
        per_head = bool(rows["head"].notna().any())
        if not per_head:
            frame = rows[["layer", "position", "value"]]
            head = None
        elif head is None:
            grouped = rows.groupby(["layer", "position"], as_index=False)["value"]
            frame = grouped.mean() if metric in MEAN_OVER_HEADS else grouped.sum()
        else:
            layer, h = head
            frame = rows[(rows["layer"] == layer) & (rows["head"] == h)]
            if frame.empty:
                raise NotFound(f"run {self.run_id} has no {metric} rows for head {layer}.{h}")
            frame = frame[["layer", "position", "value"]]
        frame = frame.astype({"layer": int, "position": int}).reset_index(drop=True)
        return PositionGrid(self.run_id, metric, head, per_head, frame)


def aggregate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The aggregate rows of a head-results frame (position and prompt null)."""
    return df[df["position"].isna() & df["prompt"].isna()]


def position_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The per-position rows of a head-results frame (position set)."""
    return df[df["position"].notna()]


def split_results(run_id: int, df: pd.DataFrame) -> ResultTables:
    aggregate: dict[str, pd.DataFrame] = {}
    layer_level: dict[str, pd.DataFrame] = {}
    per_position: dict[str, pd.DataFrame] = {}
    if df.empty:
        return ResultTables(run_id, aggregate, layer_level, per_position)
    for metric, rows in aggregate_rows(df).groupby("metric", sort=True):
        heads = rows[rows["head"].notna()]
        if not heads.empty:
            grid = heads[["layer", "head", "value"]].astype({"layer": int, "head": int})
            aggregate[str(metric)] = grid.reset_index(drop=True)
        layers = rows[rows["head"].isna()]
        if not layers.empty:
            layer_level[str(metric)] = layers[["layer", "value"]].reset_index(drop=True)
    positioned = df["position"].notna() & df["prompt"].isna()
    for metric, rows in df[positioned].groupby("metric", sort=True):
        frame = rows[["layer", "head", "position", "value"]]
        per_position[str(metric)] = frame.reset_index(drop=True)
    return ResultTables(run_id, aggregate, layer_level, per_position)
