"""Re-select a stored circuit from its edge scores, without recomputing. Torch-free.

``select_circuit`` keeps the ``top_k`` edges by |score| (ties: stored order) or those with
|score| >= ``threshold``; with neither it keeps the stored ``in_circuit`` flags. Used by the web
app's circuit slider, so it must never import torch.
"""

from __future__ import annotations

import pandas as pd


def select_circuit(
    edges: pd.DataFrame, top_k: int | None = None, threshold: float | None = None
) -> pd.DataFrame:
    """The edges DataFrame (source, target, score, in_circuit) with ``in_circuit`` recomputed."""
    if top_k is not None and threshold is not None:
        raise ValueError("give top_k or threshold, not both")
    out = edges.copy()
    if top_k is not None:
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        order = out["score"].abs().sort_values(ascending=False, kind="stable").index
        out["in_circuit"] = False
        out.loc[order[:top_k], "in_circuit"] = True
    elif threshold is not None:
        out["in_circuit"] = out["score"].abs() >= float(threshold)
    return out


def select_edges(
    edges: pd.DataFrame, *, top_k: int | None = None, threshold: float | None = None
) -> pd.DataFrame:
    """The selected edges, strongest first (the app's pruned view); all edges with neither."""
    selected = select_circuit(edges, top_k=top_k, threshold=threshold)
    kept = selected
    if top_k is not None or threshold is not None:
        kept = selected[selected["in_circuit"].astype(bool)]
    return kept.reindex(kept["score"].abs().sort_values(ascending=False).index).reset_index(
        drop=True
    )
