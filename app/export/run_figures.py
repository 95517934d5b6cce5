"""Figures of a stored run by kind name: what ``headlab export figure RUN --kind K`` draws.

Each kind reads what it needs from the store (per-head rows, circuit edges, the run summary,
artifacts) and hands it to one pure builder from ``app.figures``. Missing inputs raise
:class:`ExportError` naming what is missing and the valid choices (metrics of the run, heads of
the grid, prompts stored, figure kinds). Kinds live in a registry so that the CLI, the bundle
and the docs list the same set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.export.errors import ExportError
from app.figures import circuits, heads, patterns, sae
from storage.errors import NotFound
from storage.records import RunRecord
from storage.store import ResultStore

PATTERNS = "patterns.safetensors"
TOKENS = "tokens.json"


@dataclass(frozen=True)
class FigureRequest:
    """What to draw of a run; fields a kind does not use are ignored."""

    metric: str | None = None
    head: tuple[int, int] | None = None
    prompt: int = 0
    feature: int | None = None
    top_k: int | None = None
    threshold: float | None = None


def parse_head(text: str) -> tuple[int, int]:
    """``"1.2"`` → ``(1, 2)``; raises :class:`ExportError` on anything else."""
    parts = text.strip().split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ExportError(f"--head must be LAYER.HEAD such as 1.2, got {text!r}")
    return int(parts[0]), int(parts[1])


def _head_metrics(df: pd.DataFrame) -> list[str]:
    return sorted(df.loc[df["head"].notna(), "metric"].unique())


def _position_metrics(df: pd.DataFrame) -> list[str]:
    return sorted(df.loc[df["position"].notna(), "metric"].unique())


def _choose_metric(run: RunRecord, metric: str | None, available: list[str], what: str) -> str:
    if not available:
        raise ExportError(f"run {run.id} ({run.kind}) has no {what} results to draw")
    if metric is None:
        if len(available) == 1:
            return available[0]
        raise ExportError(
            f"run {run.id} has several {what} metrics; pass --metric, one of: "
            + ", ".join(available)
        )
    if metric not in available:
        raise ExportError(
            f"run {run.id} has no {what} metric {metric!r}; choose one of: " + ", ".join(available)
        )
    return metric


def _tokens(store: ResultStore, run: RunRecord, prompt: int) -> list[str] | None:
    try:
        path = store.get_artifact(run.id, TOKENS).path
    except NotFound:
        return None
    with open(path, encoding="utf-8") as fh:
        prompts = json.load(fh).get("prompts", [])
    return [str(t) for t in prompts[prompt]] if 0 <= prompt < len(prompts) else None


def _summary(run: RunRecord, key: str) -> dict:
    value = run.summary.get(key)
    if not isinstance(value, dict):
        raise ExportError(f"run {run.id} ({run.kind}) has no {key!r} in its summary")
    return value


def _artifact_path(store: ResultStore, run: RunRecord, name: str) -> str:
    try:
        return store.get_artifact(run.id, name).path
    except NotFound:
        raise ExportError(f"run {run.id} ({run.kind}) has no {name} artifact") from None


def _feature(run: RunRecord, req: FigureRequest, available: list[int]) -> int:
    if req.feature is None:
        raise ExportError("this figure needs --feature N (an SAE feature index)")
    if req.feature not in available:
        shown = ", ".join(map(str, available[:20])) + (" …" if len(available) > 20 else "")
        raise ExportError(f"run {run.id} has no data for feature {req.feature}; try: {shown}")
    return req.feature


def heatmap(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    df = store.head_results(run.id)
    metric = _choose_metric(run, req.metric, _head_metrics(df), "per-head")
    return heads.head_heatmap(df[df["metric"] == metric], metric)


def position(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    df = store.head_results(run.id)
    metric = _choose_metric(run, req.metric, _position_metrics(df), "per-position")
    rows = df[(df["metric"] == metric) & df["position"].notna()]
    if rows["head"].notna().any():
        if req.head is not None:
            layer, head = req.head
            rows = rows[(rows["layer"] == layer) & (rows["head"] == head)]
            if rows.empty:
                raise ExportError(f"run {run.id} has no {metric} rows for head {layer}.{head}")
        rows = rows.groupby(["layer", "position"], as_index=False)["value"].sum()
    tokens = _tokens(store, run, req.prompt)
    if tokens is not None and len(tokens) <= int(rows["position"].max()):
        tokens = None
    return heads.position_heatmap(rows.assign(metric=metric), metric, tokens=tokens)


def pattern(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    from safetensors import safe_open

    if req.head is None:
        raise ExportError("the pattern figure needs --head LAYER.HEAD")
    layer, head = req.head
    key = f"prompt{req.prompt}"
    with safe_open(_artifact_path(store, run, PATTERNS), framework="np") as fh:
        keys = sorted(fh.keys(), key=lambda k: int(k.removeprefix("prompt") or 0))
        if key not in keys:
            raise ExportError(
                f"run {run.id} has no pattern for --prompt {req.prompt}; "
                f"stored prompts: 0..{len(keys) - 1}"
            )
        block = fh.get_slice(key)
        n_layers, n_heads = block.get_shape()[:2]
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ExportError(
                f"no head {layer}.{head}: the model has layers 0..{n_layers - 1} "
                f"and heads 0..{n_heads - 1}"
            )
        matrix = np.asarray(block[layer : layer + 1, head : head + 1], dtype=np.float32)[0, 0]
    tokens = _tokens(store, run, req.prompt)
    if tokens is None or len(tokens) != matrix.shape[0]:
        tokens = [str(i) for i in range(matrix.shape[0])]
    return patterns.attention_pattern(matrix, tokens, layer=layer, head=head)


def circuit(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    edges = store.edges(run.id)
    if edges.empty:
        raise ExportError(f"run {run.id} ({run.kind}) has no circuit edges")
    return circuits.circuit_graph(
        edges, store.nodes(run.id), top_k=req.top_k, threshold=req.threshold
    )


def faithfulness(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    label = str(run.config.get("method", run.kind))
    return circuits.faithfulness_curves({label: _summary(run, "faithfulness_curve")})


def roc(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    rocs = _summary(run, "roc")
    return circuits.roc_curves({name: r for name, r in rocs.items() if isinstance(r, dict)})


def sae_training(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    return sae.training_curves(_summary(run, "training_curve"))


def sae_heads(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    shares = pd.read_parquet(_artifact_path(store, run, "sae_head_shares.parquet"))
    feature = _feature(run, req, sorted(int(f) for f in shares["feature"].unique()))
    return sae.head_share_bars(shares, feature)


def sae_contexts(store: ResultStore, run: RunRecord, req: FigureRequest) -> go.Figure:
    with open(_artifact_path(store, run, "sae_top_contexts.json"), encoding="utf-8") as fh:
        contexts = json.load(fh)
    feature = _feature(run, req, sorted(int(f) for f in contexts))
    return sae.top_contexts(contexts[str(feature)])


Builder = Callable[[ResultStore, RunRecord, FigureRequest], go.Figure]
FIGURE_KINDS: dict[str, tuple[Builder, str]] = {
    "heatmap": (heatmap, "layer × head heatmap of --metric"),
    "position": (position, "layer × position heatmap of a per-position --metric"),
    "pattern": (pattern, "attention pattern of --head L.H on --prompt i"),
    "circuit": (circuit, "circuit graph (--top-k / --threshold prune it)"),
    "faithfulness": (faithfulness, "faithfulness curve from the run summary"),
    "roc": (roc, "ROC against the ground truth from the run summary"),
    "sae-training": (sae_training, "SAE training curves"),
    "sae-heads": (sae_heads, "per-head attribution shares of SAE --feature"),
    "sae-contexts": (sae_contexts, "top-activating contexts of SAE --feature"),
}


def run_figure(store: ResultStore, run_id: int, kind: str, req: FigureRequest) -> go.Figure:
    """The figure ``kind`` of run ``run_id``; raises :class:`ExportError` or ``NotFound``."""
    if kind not in FIGURE_KINDS:
        raise ExportError(
            f"unknown figure kind {kind!r}; choose one of: " + ", ".join(FIGURE_KINDS)
        )
    run = store.get_run(run_id)
    try:
        return FIGURE_KINDS[kind][0](store, run, req)
    except (ValueError, KeyError) as exc:
        if isinstance(exc, ExportError):
            raise
        raise ExportError(f"run {run_id}: cannot draw {kind}: {exc}") from exc
