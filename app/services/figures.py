"""Figure specs: small JSON dicts naming a figure of stored results, and how to build each.

The page callbacks and the export menu build figures through the same spec, so an exported
figure is exactly the one on screen, rebuilt on the server from the store (the client only
sends ids and names, never a path). A spec is ``{"kind": <name>, ...}`` with these kinds:

- ``head_heatmap`` run, metric · ``pattern`` run, layer, head, prompt
- ``position_heatmap`` run, metric, [layer, head]
- ``circuit_graph`` run, top_k | threshold · ``faithfulness`` runs · ``roc`` runs
- ``sae_training`` run · ``sae_shares`` run, feature · ``sae_contexts`` run, feature
- ``sae_dfa`` run, feature · ``compare_side`` / ``compare_diff`` a, b, metric
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
from _plotly_utils.utils import to_typed_array_spec

from app.figures import circuits as circuit_figures
from app.figures import compare as compare_figures
from app.figures import heads as head_figures
from app.figures import patterns as pattern_figures
from app.figures import sae as sae_figures
from app.services import circuits, sae
from app.services.results import ResultsReader

Spec = dict[str, Any]
Builder = Callable[[ResultsReader, Spec], go.Figure]


class SpecError(ValueError):
    """A figure spec names an unknown kind or lacks a field."""


def _head_heatmap(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = reader.store.get_run(int(spec["run"]))
    title = f"run #{run.id} {run.kind} · {spec['metric']}"
    return head_figures.head_heatmap(
        reader.head_grid(run.id, spec["metric"]), spec["metric"], title=title
    )


def _pattern(reader: ResultsReader, spec: Spec) -> go.Figure:
    layer, head = int(spec["layer"]), int(spec["head"])
    matrix, tokens = reader.pattern(int(spec["run"]), int(spec["prompt"]), layer, head)
    return pattern_figures.attention_pattern(matrix, tokens, layer=layer, head=head)


def _position_heatmap(reader: ResultsReader, spec: Spec) -> go.Figure:
    run_id = int(spec["run"])
    head = (int(spec["layer"]), int(spec["head"])) if spec.get("head") is not None else None
    grid = reader.position_grid(run_id, spec["metric"], head)
    tokens = spec.get("tokens") or None
    if tokens is not None and len(tokens) <= int(grid["position"].max()):
        tokens = None
    return head_figures.position_heatmap(grid, spec["metric"], tokens=tokens)


def _circuit_graph(reader: ResultsReader, spec: Spec) -> go.Figure:
    run_id = int(spec["run"])
    top_k = spec.get("top_k")
    threshold = spec.get("threshold")
    run = reader.store.get_run(run_id)
    return circuit_figures.circuit_graph(
        reader.store.edges(run_id),
        reader.store.nodes(run_id),
        top_k=top_k,
        threshold=threshold,
        title=circuits.method_label(run),
    )


def _faithfulness(reader: ResultsReader, spec: Spec) -> go.Figure:
    runs = [int(r) for r in spec["runs"]]
    return circuit_figures.faithfulness_curves(
        circuits.curves(reader.store, runs, "faithfulness_curve")
    )


def _roc(reader: ResultsReader, spec: Spec) -> go.Figure:
    runs = [int(r) for r in spec["runs"]]
    return circuit_figures.roc_curves(circuits.curves(reader.store, runs, "roc"))


def _sae_training(reader: ResultsReader, spec: Spec) -> go.Figure:
    run = reader.store.get_run(int(spec["run"]))
    return sae_figures.training_curves(run.summary.get("training_curve") or {})


def _sae_shares(reader: ResultsReader, spec: Spec) -> go.Figure:
    shares = sae.head_shares(reader.store, int(spec["run"]))
    return sae_figures.head_share_bars(shares, int(spec["feature"]))


def _sae_contexts(reader: ResultsReader, spec: Spec) -> go.Figure:
    contexts = sae.top_contexts(reader.store, int(spec["run"]), int(spec["feature"]))
    return sae_figures.top_contexts(contexts)


def _sae_dfa(reader: ResultsReader, spec: Spec) -> go.Figure:
    feature = int(spec["feature"])
    rows, context, tokens = sae.dfa_rows(reader.store, int(spec["run"]), feature)
    return sae_figures.dfa_heatmap(rows, feature, context, tokens=tokens or None)


def _compare_grids(reader: ResultsReader, spec: Spec) -> tuple[Any, Any, str]:
    metric = spec["metric"]
    return (
        reader.head_grid(int(spec["a"]), metric),
        reader.head_grid(int(spec["b"]), metric),
        metric,
    )


def _compare_side(reader: ResultsReader, spec: Spec) -> go.Figure:
    return compare_figures.side_by_side(*_compare_grids(reader, spec))


def _compare_diff(reader: ResultsReader, spec: Spec) -> go.Figure:
    return compare_figures.difference_heatmap(*_compare_grids(reader, spec))


BUILDERS: dict[str, Builder] = {
    "head_heatmap": _head_heatmap,
    "pattern": _pattern,
    "position_heatmap": _position_heatmap,
    "circuit_graph": _circuit_graph,
    "faithfulness": _faithfulness,
    "roc": _roc,
    "sae_training": _sae_training,
    "sae_shares": _sae_shares,
    "sae_contexts": _sae_contexts,
    "sae_dfa": _sae_dfa,
    "compare_side": _compare_side,
    "compare_diff": _compare_diff,
}


def build_figure(reader: ResultsReader, spec: Spec) -> go.Figure:
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in BUILDERS:
        raise SpecError(f"unknown figure kind {kind!r}; known: {', '.join(sorted(BUILDERS))}")
    try:
        return BUILDERS[kind](reader, spec)
    except KeyError as exc:
        raise SpecError(f"figure spec {kind!r} lacks field {exc.args[0]!r}") from None


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


def spec_name(spec: Spec) -> str:
    """A file-name stem for a spec, e.g. ``run12_head_heatmap_induction_score``."""
    parts = [str(spec.get("kind", "figure"))]
    for key in ("run", "a", "b", "metric", "layer", "head", "prompt", "feature"):
        if spec.get(key) is not None:
            parts.append(f"{key}{spec[key]}" if key not in ("metric",) else str(spec[key]))
    safe = "_".join(parts)
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in safe)[:120]
