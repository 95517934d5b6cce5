"""Figure kinds: every figure headlab draws, declared once for the pages, export and bundles.

A figure is named by a *spec*, a small JSON dict ``{"kind": <name>, ...}`` of ids and names
(never a path): the pages keep it next to the figure, the export menu sends it back, and
``headlab export figure RUN --kind K`` and bundles build it with :func:`export_spec`. So an
exported figure is exactly the one on screen, rebuilt on the server from the store.

Each :class:`FigureKind` in :data:`FIGURES` says what its spec holds, its builder (stored data →
one pure builder of :mod:`app.figures`), its ``headlab export`` name, its default paper preset,
and which specs of a run a bundle draws. Adding a figure kind is one entry and one builder.
Missing inputs raise :class:`ExportError` naming what is missing and the valid choices.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from _plotly_utils.utils import to_typed_array_spec

from app.export.errors import ExportError
from app.figures import circuits as circuit_figures
from app.figures import compare as compare_figures
from app.figures import heads as head_figures
from app.figures import importance as importance_figures
from app.figures import overlap as overlap_figures
from app.figures import path_patch as path_figures
from app.figures import patterns as pattern_figures
from app.figures import sae as sae_figures
from app.figures import taxonomy as taxonomy_figures
from app.services import circuits, overlap, sae
from app.services import explore as explore_service
from app.services import lens as lens_service
from app.services.results import PATTERNS, ResultsReader
from storage.errors import NotFound
from storage.records import RunRecord

Spec = dict[str, Any]
Builder = Callable[[ResultsReader, Spec], go.Figure]
BundleSpecs = Callable[[ResultsReader, RunRecord], list[Spec]]


@dataclass(frozen=True)
class FigureKind:
    """One figure kind. ``fields`` are the spec keys it reads (besides ``kind``)."""

    name: str
    fields: str
    build: Builder
    help: str
    export_name: str | None = None  # `headlab export figure --kind`; None: not a one-run figure
    preset: str = "column"
    bundle: BundleSpecs | None = None


# -- reading and checking inputs ------------------------------------------------------------


def _run(reader: ResultsReader, spec: Spec, key: str = "run") -> RunRecord:
    return reader.store.get_run(int(spec[key]))


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


def _head(spec: Spec) -> tuple[int, int] | None:
    if spec.get("head") is None or spec.get("layer") is None:
        return None
    return int(spec["layer"]), int(spec["head"])


def _feature(run: RunRecord, spec: Spec, available: list[int]) -> int:
    if spec.get("feature") is None:
        raise ExportError("this figure needs --feature N (an SAE feature index)")
    feature = int(spec["feature"])
    if feature not in available:
        shown = ", ".join(map(str, available[:20])) + (" …" if len(available) > 20 else "")
        raise ExportError(f"run {run.id} has no data for feature {feature}; try: {shown}")
    return feature


def _summary_curves(reader: ResultsReader, spec: Spec, key: str) -> dict[str, dict[str, Any]]:
    runs = [int(r) for r in spec["runs"]]
    found = circuits.curves(reader.store, runs, key)
    if not found:
        named = ", ".join(f"run {r}" for r in runs)
        raise ExportError(f"{named}: no {key!r} in the run summary to draw")
    return found


# -- builders ---------------------------------------------------------------------------------


def _head_heatmap(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    metric = _choose_metric(run, spec.get("metric"), reader.metrics(run.id), "per-head")
    title = f"run #{run.id} {run.kind} · {metric}"
    grid = reader.head_grid(run.id, metric)
    return head_figures.head_heatmap(grid.frame, metric, title=title)


def _position_heatmap(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    available = reader.position_metrics(run.id)
    metric = _choose_metric(run, spec.get("metric"), available, "per-position")
    head = _head(spec)
    grid = reader.position_grid(run.id, metric, head)
    tokens = spec.get("tokens") or None
    prompt = None if spec.get("prompt") is None else int(spec["prompt"])
    if tokens is None and prompt is not None:
        stored = reader.prompt_tokens(run.id)
        tokens = stored[prompt] if 0 <= prompt < len(stored) else None
    title = f"run #{run.id} {run.kind} · {metric}"
    if head is not None:
        title += f" · head {head[0]}.{head[1]}"
    if tokens is not None:
        title += " · tokens of " + (f"prompt {prompt}" if prompt is not None else "a prompt")
    return head_figures.position_heatmap(grid.frame, metric, tokens=tokens, title=title)


def _pattern(reader: ResultsReader, spec: Spec) -> go.Figure:
    head = _head(spec)
    if head is None:
        raise ExportError("the pattern figure needs --head LAYER.HEAD")
    layer, h = head
    matrix, tokens = reader.pattern(int(spec["run"]), int(spec.get("prompt") or 0), layer, h)
    return pattern_figures.attention_pattern(matrix, tokens, layer=layer, head=h)


def _circuit_graph(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    edges = reader.store.edges(run.id)
    if edges.empty:
        raise ExportError(f"run {run.id} ({run.kind}) has no circuit edges")
    return circuit_figures.circuit_graph(
        edges,
        reader.store.nodes(run.id),
        top_k=spec.get("top_k"),
        threshold=spec.get("threshold"),
        title=circuits.method_label(run),
    )


def _faithfulness(reader: ResultsReader, spec: Spec) -> go.Figure:
    return circuit_figures.faithfulness_curves(_summary_curves(reader, spec, "faithfulness_curve"))


def _roc(reader: ResultsReader, spec: Spec) -> go.Figure:
    return circuit_figures.roc_curves(_summary_curves(reader, spec, "roc"))


def _sae_training(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    curve = run.summary.get("training_curve")
    if not isinstance(curve, dict):
        raise ExportError(f"run {run.id} ({run.kind}) has no 'training_curve' in its summary")
    return sae_figures.training_curves(curve)


def _sae_shares(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    shares = sae.head_shares(reader.store, run.id)
    feature = _feature(run, spec, sorted(int(f) for f in shares["feature"].unique()))
    return sae_figures.head_share_bars(shares, feature)


def _sae_contexts(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    feature = _feature(run, spec, sae.context_features(reader.store, run.id))
    return sae_figures.top_contexts(sae.top_contexts(reader.store, run.id, feature))


def _sae_dfa(reader: ResultsReader, spec: Spec) -> go.Figure:
    feature = int(spec["feature"])
    rows, context, tokens = sae.dfa_rows(reader.store, int(spec["run"]), feature)
    return sae_figures.dfa_heatmap(rows, feature, context, tokens=tokens or None)


def _compare_grids(reader: ResultsReader, spec: Spec) -> tuple[Any, Any, str]:
    metric = spec["metric"]
    a, b = (reader.head_grid(int(spec[k]), metric).frame for k in ("a", "b"))
    return a, b, metric


def _compare_side(reader: ResultsReader, spec: Spec) -> go.Figure:
    return compare_figures.side_by_side(*_compare_grids(reader, spec))


def _compare_diff(reader: ResultsReader, spec: Spec) -> go.Figure:
    return compare_figures.difference_heatmap(*_compare_grids(reader, spec))


def _compare_sweep(reader: ResultsReader, spec: Spec) -> go.Figure:
    from app.services.compare import head_frame
    from app.sweeps import sweep_label

    sweep = reader.store.get_sweep(int(spec["sweep"]))
    metric = spec["metric"]
    frames = [
        (sweep_label(sweep.spec, reader.store.get_run(int(r))), head_frame(reader, int(r), metric))
        for r in spec["runs"]
    ]
    return compare_figures.sweep_grids(frames, metric)


def _compare_movers(reader: ResultsReader, spec: Spec) -> go.Figure:
    from app.services import compare

    a, b, metric = int(spec["a"]), int(spec["b"]), spec.get("metric")
    if metric is None:
        shared = ", ".join(compare.shared_metrics(reader, a, b)) or "(none)"
        raise ExportError(f"the movers figure needs --metric; metrics both runs have: {shared}")
    try:
        table = compare.movers(reader, a, b, metric, int(spec.get("top_k") or 10))
    except compare.CompareError as exc:
        raise ExportError(str(exc)) from None
    pair = compare.run_pair(reader, a, b)
    what = f"{pair.model_a} → {pair.model_b}" if pair.cross_model else f"#{a} → #{b}"
    return compare_figures.mover_bars(table, metric, title=f"heads that moved most · {what}")


def _overlap(reader: ResultsReader, spec: Spec) -> overlap.CircuitOverlap:
    try:
        return overlap.circuit_overlap(reader.store, [int(r) for r in spec["runs"]])
    except overlap.OverlapError as exc:
        raise ExportError(str(exc)) from None


def _circuit_overlap(reader: ResultsReader, spec: Spec) -> go.Figure:
    found = _overlap(reader, spec)
    labels = [r.label for r in found.runs]
    return overlap_figures.membership_grid(
        found.head_membership(), found.n_layers, found.n_heads, labels,
        title=f"circuit heads across tasks · {found.model}",
    )  # fmt: skip


def _overlap_matrix(reader: ResultsReader, spec: Spec) -> go.Figure:
    level = spec.get("level") or "heads"
    if level not in ("heads", "nodes"):
        raise ExportError(f"--level must be heads or nodes, got {level!r}")
    found = _overlap(reader, spec)
    matrices = {m: found.matrix(level, m) for m in overlap.MEASURES}
    return overlap_figures.overlap_matrix([r.label for r in found.runs], matrices, level=level)


# -- taxonomy runs ----------------------------------------------------------------------------

HEAD_SIMILARITY = "head_similarity.json"


def _taxonomy_summary(run: RunRecord, key: str, what: str) -> Any:
    value = run.summary.get(key)
    if not value:
        raise ExportError(
            f"run {run.id} ({run.kind}) has no {key!r} in its summary: {what} comes from a "
            "taxonomy run"
        )
    return value


def _taxonomy_head(reader: ResultsReader, run: RunRecord, spec: Spec, name: str) -> tuple[int, int]:
    """The spec's head, checked against the run's heads."""
    head = _head(spec)
    if head is None:
        raise ExportError(f"the {name} figure needs --head LAYER.HEAD")
    heads = reader.tables(run.id).aggregate
    if heads:
        grid = next(iter(heads.values()))
        n_layers, n_heads = int(grid["layer"].max()) + 1, int(grid["head"].max()) + 1
        if not (0 <= head[0] < n_layers and 0 <= head[1] < n_heads):
            raise ExportError(
                f"no head {head[0]}.{head[1]}: the model has layers 0..{n_layers - 1} "
                f"and heads 0..{n_heads - 1}"
            )
    return head


def _rows(reader: ResultsReader, run: RunRecord, metric: str, what: str) -> Any:
    rows = reader.store.head_results(run.id, metric)
    if rows.empty:
        raise ExportError(f"run {run.id} ({run.kind}) has no {metric!r} rows: {what}")
    return rows


def _kv_curve(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    curve = _taxonomy_summary(run, "kv_curve", "the KV-cache curve")
    metric = spec.get("metric")
    try:
        return taxonomy_figures.kv_curve(curve, metrics=[metric] if metric else None)
    except ValueError as exc:
        raise ExportError(f"run {run.id}: {exc}") from None


def _retrieval_map(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    prompts = run.summary.get("needle_prompts") or []
    if not any(p.get("depth") is not None for p in prompts):
        raise ExportError(
            f"run {run.id} ({run.kind}) has no needle prompts: run taxonomy on a needle prompt "
            "set (headlab prompts generate needle) to draw retrieval maps"
        )
    layer, head = _taxonomy_head(reader, run, spec, "retrieval-map")
    rows = _rows(reader, run, "retrieval_score", "no prompt of the run holds a needle")
    rows = rows[rows["prompt"].notna()].copy()
    index = rows["prompt"].astype(int)
    known = index.between(0, len(prompts) - 1)
    rows, index = rows[known], index[known]
    rows["depth"] = [prompts[i].get("depth") for i in index]
    rows["context"] = [prompts[i].get("context") for i in index]
    return taxonomy_figures.retrieval_map(rows, layer, head)


def _head_similarity(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    try:
        artifact = reader.store.open_artifact(run.id, HEAD_SIMILARITY)
    except NotFound:
        raise ExportError(
            f"run {run.id} ({run.kind}) has no {HEAD_SIMILARITY} artifact: head similarity "
            "comes from a taxonomy run"
        ) from None
    with open(artifact.path, encoding="utf-8") as fh:
        data = json.load(fh)
    return taxonomy_figures.head_similarity(data)


def _span(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    layer, head = _taxonomy_head(reader, run, spec, "span")
    rows = _rows(reader, run, "span", "attention spans come from a taxonomy run")
    if rows["position"].isna().all():
        raise ExportError(f"run {run.id} ({run.kind}) has no per-position 'span' rows")
    return taxonomy_figures.span_profile(rows, layer, head)


def _dormancy(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    layer, head = _taxonomy_head(reader, run, spec, "dormancy")
    what = "dormancy comes from a taxonomy run"
    rows = [_rows(reader, run, m, what) for m in ("sink_mass", "output_norm_ratio")]
    frame = pd.concat(rows, ignore_index=True)
    if frame["prompt"].isna().all():
        raise ExportError(f"run {run.id} ({run.kind}) has no per-prompt dormancy rows")
    return taxonomy_figures.dormancy(
        frame,
        layer,
        head,
        float(run.config.get("dormant_sink_mass", 0.6)),
        float(run.config.get("dormant_norm_ratio", 0.5)),
    )


def _massive(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    rows = _taxonomy_summary(run, "massive_activations", "the massive activations")
    return taxonomy_figures.massive_activations(rows)


# -- importance runs --------------------------------------------------------------------------


def _pruning_curve(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    curve = run.summary.get("pruning_curve")
    if not isinstance(curve, dict):
        raise ExportError(
            f"run {run.id} ({run.kind}) has no 'pruning_curve' in its summary: pruning curves "
            "come from an importance run"
        )
    panel = spec.get("metric")
    try:
        return importance_figures.pruning_curve(
            curve, metric=str(run.summary.get("metric")), panels=[panel] if panel else None
        )
    except ValueError as exc:
        raise ExportError(f"run {run.id}: {exc}") from None


def _importance_scatter(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    needed = ("grad_importance", "ablation_importance")
    if not set(needed) <= set(reader.metrics(run.id)):
        raise ExportError(
            f"run {run.id} ({run.kind}) has no grad_importance and ablation_importance: the "
            "importance scatter comes from an importance run"
        )
    grad, abl = (reader.head_grid(run.id, m).frame for m in needed)
    frame = grad.rename(columns={"value": "grad"}).merge(
        abl.rename(columns={"value": "ablation"}), on=["layer", "head"]
    )
    rho = run.summary.get("spearman_grad_ablation")
    return importance_figures.importance_scatter(frame, spearman=rho)


# -- path-patch runs ---------------------------------------------------------------------------


def _path_grid(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = _run(reader, spec)
    grid = run.summary.get("grid")
    if not isinstance(grid, dict):
        raise ExportError(
            f"run {run.id} ({run.kind}) has no sender × receiver 'grid' in its summary: the "
            "path grid comes from a path-patch run with --grid"
        )
    value = "delta" if spec.get("metric") == "delta" else "values"
    how = f"{run.summary.get('direction')}, {run.summary.get('metric')}"
    title = f"run #{run.id} path patching ({how})"
    try:
        return path_figures.path_grid(grid, title=title, value=value)
    except ValueError as exc:
        raise ExportError(f"run {run.id}: {exc}") from None


# -- what a bundle draws of a run ---------------------------------------------------------------


def _bundle_heatmaps(reader: ResultsReader, run: RunRecord) -> list[Spec]:
    return [{"kind": "head_heatmap", "run": run.id, "metric": m} for m in reader.metrics(run.id)]


def _bundle_positions(reader: ResultsReader, run: RunRecord) -> list[Spec]:
    return [
        {"kind": "position_heatmap", "run": run.id, "metric": m, "prompt": 0}
        for m in reader.position_metrics(run.id)
    ]


def _bundle_pattern(reader: ResultsReader, run: RunRecord) -> list[Spec]:
    """The pattern of the head with the largest |value| in any metric, on prompt 0."""
    tables = reader.tables(run.id)
    if not tables.aggregate or PATTERNS not in {a.name for a in reader.store.artifacts(run.id)}:
        return []
    best = max(
        (grid.loc[grid["value"].abs().idxmax()] for grid in tables.aggregate.values()),
        key=lambda row: abs(float(row["value"])),
    )
    layer, head = int(best["layer"]), int(best["head"])
    return [{"kind": "pattern", "run": run.id, "layer": layer, "head": head, "prompt": 0}]


def _bundle_circuit(reader: ResultsReader, run: RunRecord) -> list[Spec]:
    return [] if reader.store.edges(run.id).empty else [{"kind": "circuit_graph", "run": run.id}]


def _bundle_summary(kind: str, key: str, *, runs: bool) -> BundleSpecs:
    def specs(reader: ResultsReader, run: RunRecord) -> list[Spec]:
        if not isinstance(run.summary.get(key), dict):
            return []
        return [{"kind": kind, "runs": [run.id]} if runs else {"kind": kind, "run": run.id}]

    return specs


def _bundle_taxonomy(kind: str, test: Callable[[ResultsReader, RunRecord], bool]) -> BundleSpecs:
    def specs(reader: ResultsReader, run: RunRecord) -> list[Spec]:
        return [{"kind": kind, "run": run.id}] if test(reader, run) else []

    return specs


def _bundle_top_head(kind: str, metric: str, needs: str | None = None) -> BundleSpecs:
    """The figure of the head with the largest aggregate ``metric`` (the first head on ties),
    when the run has that metric (and its summary has ``needs``)."""

    def specs(reader: ResultsReader, run: RunRecord) -> list[Spec]:
        if needs is not None and not run.summary.get(needs):
            return []
        if metric not in reader.metrics(run.id):
            return []
        grid = reader.head_grid(run.id, metric).frame
        if grid.empty or not grid["value"].notna().any():
            return []
        best = grid.loc[grid["value"].idxmax()]
        return [
            {"kind": kind, "run": run.id, "layer": int(best["layer"]), "head": int(best["head"])}
        ]

    return specs


def _has_similarity(reader: ResultsReader, run: RunRecord) -> bool:
    return HEAD_SIMILARITY in {a.name for a in reader.store.artifacts(run.id)}


FIGURES: tuple[FigureKind, ...] = (
    FigureKind(
        "head_heatmap",
        "run, metric",
        _head_heatmap,
        "layer × head heatmap of --metric",
        "heatmap",
        bundle=_bundle_heatmaps,
    ),
    FigureKind(
        "position_heatmap",
        "run, metric, [layer, head], [prompt], [tokens (of that prompt)]",
        _position_heatmap,
        "layer × position heatmap of a per-position --metric",
        "position",
        bundle=_bundle_positions,
    ),
    FigureKind(
        "pattern",
        "run, layer, head, prompt",
        _pattern,
        "attention pattern of --head L.H on --prompt i",
        "pattern",
        bundle=_bundle_pattern,
    ),
    FigureKind(
        "circuit_graph",
        "run, [top_k | threshold]",
        _circuit_graph,
        "circuit graph (--top-k / --threshold prune it)",
        "circuit",
        preset="text",
        bundle=_bundle_circuit,
    ),
    FigureKind(
        "faithfulness",
        "runs",
        _faithfulness,
        "faithfulness curve from the run summary",
        "faithfulness",
        bundle=_bundle_summary("faithfulness", "faithfulness_curve", runs=True),
    ),
    FigureKind(
        "roc",
        "runs",
        _roc,
        "ROC against the ground truth from the run summary",
        "roc",
        bundle=_bundle_summary("roc", "roc", runs=True),
    ),
    FigureKind(
        "sae_training",
        "run",
        _sae_training,
        "SAE training curves",
        "sae-training",
        bundle=_bundle_summary("sae_training", "training_curve", runs=False),
    ),
    FigureKind(
        "sae_shares",
        "run, feature",
        _sae_shares,
        "per-head attribution shares of SAE --feature",
        "sae-heads",
    ),
    FigureKind(
        "sae_contexts",
        "run, feature",
        _sae_contexts,
        "top-activating contexts of SAE --feature",
        "sae-contexts",
    ),
    FigureKind(
        "sae_dfa",
        "run, feature",
        _sae_dfa,
        "per-head direct feature attribution over a top context of SAE --feature",
        "sae-dfa",
    ),
    FigureKind(
        "kv_curve",
        "run, [metric]",
        _kv_curve,
        "KV-cache budget: loss / logit difference / needle accuracy against the fraction of "
        "KV heads streaming (taxonomy runs)",
        "kv-curve",
        preset="text",
        bundle=_bundle_taxonomy(
            "kv_curve", lambda _, run: isinstance(run.summary.get("kv_curve"), dict)
        ),
    ),
    FigureKind(
        "retrieval_map",
        "run, layer, head",
        _retrieval_map,
        "needle depth × context map of --head L.H's retrieval score (taxonomy runs)",
        "retrieval-map",
        bundle=_bundle_top_head("retrieval_map", "retrieval_score", "needle_prompts"),
    ),
    FigureKind(
        "head_similarity",
        "run",
        _head_similarity,
        "clustered Jensen-Shannon distances between the heads' attention (taxonomy runs)",
        "head-similarity",
        bundle=_bundle_taxonomy("head_similarity", _has_similarity),
    ),
    FigureKind(
        "span_profile",
        "run, layer, head",
        _span,
        "attention span of --head L.H against the query position (taxonomy runs)",
        "span",
    ),
    FigureKind(
        "dormancy",
        "run, layer, head",
        _dormancy,
        "sink mass against output norm per prompt of --head L.H (taxonomy runs)",
        "dormancy",
        bundle=_bundle_top_head("dormancy", "dormancy_rate"),
    ),
    FigureKind(
        "massive_activations",
        "run",
        _massive,
        "peak residual activation per layer (taxonomy runs)",
        "massive",
        bundle=_bundle_taxonomy(
            "massive_activations", lambda _, run: bool(run.summary.get("massive_activations"))
        ),
    ),
    FigureKind(
        "pruning_curve",
        "run, [metric]",
        _pruning_curve,
        "task metric and LM loss against the fraction of heads pruned, per pruning order "
        "(importance runs; --metric metric|loss draws one panel)",
        "pruning-curve",
        preset="text",
        bundle=_bundle_summary("pruning_curve", "pruning_curve", runs=False),
    ),
    FigureKind(
        "importance_scatter",
        "run",
        _importance_scatter,
        "gradient against ablation importance per head (importance runs)",
        "importance",
        bundle=_bundle_taxonomy("importance_scatter", lambda _, run: run.kind == "importance"),
    ),
    FigureKind(
        "path_grid",
        "run, [metric]",
        _path_grid,
        "sender × receiver path-patching effects, normalised (path-patch runs; --metric delta: "
        "the raw metric change)",
        "path-grid",
        preset="text",
        bundle=_bundle_summary("path_grid", "grid", runs=False),
    ),
    FigureKind(
        "ov_lens",
        "run, layer, head, [prompt]",
        lens_service.ov_lens_figure,
        "--head L.H's OV lens: its top promoted and suppressed tokens, on average and for each "
        "token of --prompt i (lens runs)",
        "ov-lens",
        preset="text",
        bundle=_bundle_top_head("ov_lens", "ov_copy_score"),
    ),
    FigureKind(
        "logit_lens_tokens",
        "run, layer, head, prompt",
        lens_service.logit_lens_figure,
        "--head L.H's logit lens: its top tokens at each position of --prompt i (lens runs)",
        "head-lens",
        bundle=_bundle_top_head("logit_lens_tokens", "ov_copy_score"),
    ),
    FigureKind(
        "trained_lens_tokens",
        "run, layer, head, prompt",
        lens_service.trained_lens_figure,
        "--head L.H's trained lens: its top tokens at each position of --prompt i (lens runs "
        "with --train)",
        "trained-lens",
        bundle=_bundle_top_head("trained_lens_tokens", "ov_copy_score", "training"),
    ),
    FigureKind(
        "explore_heads",
        "run",
        explore_service.heads_figure,
        "every head's attention pattern on the text, layers × heads (explore runs)",
        "explore-heads",
        preset="text",
        bundle=_bundle_taxonomy("explore_heads", lambda _, run: run.kind == "explore"),
    ),
    FigureKind(
        "explore_overlay",
        "run, [heads], [query], [direction]",
        explore_service.overlay_figure,
        "several heads' attention from (or to) one token, one colour per head (explore runs; "
        "default: the last layer's heads, the last token)",
        "explore-overlay",
        bundle=_bundle_taxonomy("explore_overlay", lambda _, run: run.kind == "explore"),
    ),
    FigureKind(
        "explore_lens",
        "run",
        explore_service.lens_figure,
        "logit lens at the last token: each target next token's probability per layer "
        "(explore runs)",
        "explore-lens",
        bundle=_bundle_taxonomy("explore_lens", lambda _, run: run.kind == "explore"),
    ),
    FigureKind("compare_side", "a, b, metric", _compare_side, "two runs' grids side by side"),
    FigureKind("compare_diff", "a, b, metric", _compare_diff, "difference of two runs' grids"),
    FigureKind(
        "compare_sweep", "sweep, runs, metric", _compare_sweep, "one metric across a sweep's runs"
    ),
    FigureKind(
        "compare_movers",
        "a, b, metric, [top_k]",
        _compare_movers,
        "the heads whose --metric moved most between two runs (B − A; --top-k, default 10)",
        "movers",
    ),
    FigureKind(
        "circuit_overlap",
        "runs",
        _circuit_overlap,
        "heads of 2+ circuit runs on one grid: shared by all, by some, task-specific, in none",
        "circuit-overlap",
    ),
    FigureKind(
        "overlap_matrix",
        "runs, [level]",
        _overlap_matrix,
        "pairwise Jaccard and overlap coefficient of 2+ circuit runs' heads (--level nodes: "
        "heads and MLPs)",
        "overlap-matrix",
        preset="text",
    ),
)
KINDS: dict[str, FigureKind] = {k.name: k for k in FIGURES}
EXPORT_KINDS: dict[str, FigureKind] = {k.export_name: k for k in FIGURES if k.export_name}


@dataclass(frozen=True)
class FigureRequest:
    """The options of ``headlab export figure`` (and ``Run.figure``); a kind ignores the rest."""

    metric: str | None = None
    head: tuple[int, int] | None = None
    prompt: int = 0
    feature: int | None = None
    top_k: int | None = None
    threshold: float | None = None
    level: str | None = None


def export_kind(export_name: str) -> FigureKind:
    if export_name not in EXPORT_KINDS:
        raise ExportError(
            f"unknown figure kind {export_name!r}; choose one of: " + ", ".join(EXPORT_KINDS)
        )
    return EXPORT_KINDS[export_name]


def run_fields(figure: FigureKind, run_ids: list[int]) -> Spec:
    """How a kind's spec names its runs: ``runs`` (one or more), ``a, b`` (two) or ``run``."""
    if figure.fields.startswith("runs"):
        return {"runs": run_ids}
    wanted = 2 if figure.fields.startswith("a, b") else 1
    if len(run_ids) != wanted:
        raise ExportError(
            f"figure kind {figure.export_name or figure.name} draws {wanted} run"
            f"{'s' if wanted > 1 else ''}; got {len(run_ids)} run ids"
        )
    return {"a": run_ids[0], "b": run_ids[1]} if wanted == 2 else {"run": run_ids[0]}


def export_spec(export_name: str, run_id: int | Sequence[int], request: FigureRequest) -> Spec:
    """The spec of ``headlab export figure RUN [RUN …] --kind export_name`` with its options."""
    figure = export_kind(export_name)
    run_ids = [run_id] if isinstance(run_id, int) else [int(r) for r in run_id]
    spec: Spec = {"kind": figure.name, "prompt": request.prompt} | run_fields(figure, run_ids)
    if request.head is not None:
        spec |= {"layer": request.head[0], "head": request.head[1]}
    options = {
        "metric": request.metric,
        "feature": request.feature,
        "top_k": request.top_k,
        "threshold": request.threshold,
        "level": request.level,
    }
    return spec | {k: v for k, v in options.items() if v is not None}


def run_figure(
    reader: ResultsReader, run_id: int | Sequence[int], export_name: str, request: FigureRequest
) -> go.Figure:
    """The figure ``export_name`` of run ``run_id`` (or of several runs, for kinds that draw
    several); raises ExportError or NotFound."""
    spec = export_spec(export_name, run_id, request)
    run_ids = [run_id] if isinstance(run_id, int) else [int(r) for r in run_id]
    for one in run_ids:
        reader.store.get_run(one)
    try:
        return build_figure(reader, spec)
    except ExportError:
        raise
    except (ValueError, KeyError) as exc:
        named = "run " + ", ".join(map(str, run_ids))
        raise ExportError(f"{named}: cannot draw {export_name}: {exc}") from exc


def bundle_specs(reader: ResultsReader, run: RunRecord) -> list[tuple[str, Spec]]:
    """``(file stem, spec)`` of every figure a bundle of ``run`` draws, in ``FIGURES`` order."""
    out = []
    for kind in FIGURES:
        for spec in kind.bundle(reader, run) if kind.bundle else []:
            out.append((bundle_stem(kind, spec), spec))
    return out


def bundle_stem(kind: FigureKind, spec: Spec) -> str:
    """``heatmap_induction_score``, ``pattern_1.2_prompt0``, ``circuit``…"""
    name = str(kind.export_name)
    if spec.get("metric") is not None:
        return safe_stem(f"{name}_{spec['metric']}")
    if kind.name == "pattern":
        return f"{name}_{spec['layer']}.{spec['head']}_prompt{spec.get('prompt', 0)}"
    if spec.get("layer") is not None and spec.get("head") is not None:
        return f"{name}_{spec['layer']}.{spec['head']}"
    return name


def build_figure(reader: ResultsReader, spec: Spec) -> go.Figure:
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in KINDS:
        raise ExportError(f"unknown figure kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    try:
        return KINDS[kind].build(reader, spec)
    except KeyError as exc:
        raise ExportError(f"figure spec {kind!r} lacks field {exc.args[0]!r}") from None


def page_figure(reader: ResultsReader, spec: Spec) -> dict[str, Any]:
    """The figure of ``spec`` as plotly JSON for a page, built once per spec while every run
    it names is finished (building a plotly figure costs tens of ms; pages rebuild often)."""
    runs = [spec[k] for k in ("run", "a", "b") if spec.get(k) is not None] + list(
        spec.get("runs") or []
    )
    finished = all(reader.store.get_run(int(r)).status.is_terminal for r in runs)
    if not finished:
        return build_figure(reader, spec).to_plotly_json()
    if spec.get("kind") == "pattern":
        return pattern_page_figure(reader, spec)
    key = json.dumps(spec, sort_keys=True, default=str)
    return reader.memo(key, lambda: build_figure(reader, spec).to_plotly_json())


def pattern_page_figure(reader: ResultsReader, spec: Spec) -> dict[str, Any]:
    """A head's pattern figure on a prompt of a finished run, without the builder's cost.

    The pattern figures of one prompt differ only in the z matrix and the ``head L.H`` title
    (same tokens, labels, margins, scale), so the builder runs once per (run, prompt) and other
    heads copy that figure with their own matrix and title (``pattern_for_head``; tests check
    it equals the builder's figure). Head to head then costs a pattern read, not a plotly build.
    """
    run, prompt = int(spec["run"]), int(spec["prompt"])
    layer, head = int(spec["layer"]), int(spec["head"])
    first = reader.memo(
        json.dumps({"pattern of prompt": [run, prompt]}),
        lambda: build_figure(reader, spec).to_plotly_json(),
    )
    matrix, _ = reader.pattern(run, prompt, layer, head)
    figure = pattern_for_head(first, matrix, layer, head)
    return figure if figure is not None else build_figure(reader, spec).to_plotly_json()


def pattern_for_head(
    first: dict[str, Any], matrix: np.ndarray, layer: int, head: int
) -> dict[str, Any] | None:
    """``first`` (a pattern figure of the same prompt, as plotly JSON) with ``matrix`` and the
    title of head ``layer.head``; None when ``first`` is not the builder's usual shape."""
    trace, layout = first["data"][0], first["layout"]
    z = to_typed_array_spec(np.asarray(matrix, dtype=np.float32))
    old = trace.get("z")
    if not (isinstance(old, dict) and isinstance(z, dict) and old.keys() == z.keys()):
        return None
    if old.get("shape") != z.get("shape") or old["dtype"] != z["dtype"]:
        return None
    title = {**layout.get("title", {}), "text": f"head {layer}.{head}"}
    return {**first, "data": [{**trace, "z": z}], "layout": {**layout, "title": title}}


def safe_stem(name: str) -> str:
    """``name`` with every character but letters, digits and ``._-`` replaced by ``-``."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:120]


def spec_name(spec: Spec) -> str:
    """A file-name stem for a spec, e.g. ``run12_head_heatmap_induction_score``."""
    parts = [str(spec.get("kind", "figure"))]
    for key in ("run", "a", "b", "metric", "layer", "head", "prompt", "feature"):
        if spec.get(key) is not None:
            parts.append(f"{key}{spec[key]}" if key not in ("metric",) else str(spec[key]))
    return safe_stem("_".join(parts))
