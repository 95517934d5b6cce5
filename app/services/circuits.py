"""Torch-free reads of stored circuits: edges, live pruning, evaluation curves.

Pruning keeps a run's stored edge scores and only re-selects edges (top-k by |score|, or
|score| ≥ threshold, else the stored ``in_circuit`` edges) with the same rule the circuit
figure uses (``app.figures.circuits.select_edges``), so moving the slider recomputes nothing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from app.figures.circuits import link_heads, select_edges
from app.services.results import ResultsReader
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

CIRCUIT_KINDS = ("circuit", "sae-circuit")


def method_label(run: RunRecord) -> str:
    method = run.config.get("method") or run.kind
    return f"#{run.id} {method}"


def circuit_runs(store: ResultStore, limit: int = 200) -> list[RunRecord]:
    runs: list[RunRecord] = []
    for kind in CIRCUIT_KINDS:
        runs.extend(store.list_runs(kind=kind, status=RunStatus.FINISHED, limit=limit))
    return sorted(runs, key=lambda r: r.id, reverse=True)


def score_range(store: ResultStore, run_ids: list[int]) -> tuple[int, float]:
    """(largest edge count, largest |score|) over the runs, for the slider limits."""
    n_max, s_max = 0, 0.0
    for run_id in run_ids:
        edges = store.edges(run_id)
        if not edges.empty:
            n_max = max(n_max, len(edges))
            s_max = max(s_max, float(edges["score"].abs().max()))
    return n_max, s_max


def pruned_edges(
    store: ResultStore, run_id: int, top_k: int | None, threshold: float | None
) -> pd.DataFrame:
    """The edges the graph draws for this selection (same rule as the figure)."""
    return select_edges(store.edges(run_id), top_k=top_k, threshold=threshold, max_edges=10**9)


def curves(store: ResultStore, run_ids: list[int], key: str) -> dict[str, dict[str, Any]]:
    """Summary curves of several runs by label: ``faithfulness_curve`` per run, ``roc`` per run
    and level (the summary holds ``{"edge": {fpr, tpr, auc}, "node": {...}}``)."""
    out: dict[str, dict[str, Any]] = {}
    for run_id in run_ids:
        run = store.get_run(run_id)
        value = run.summary.get(key)
        if not value:
            continue
        if key == "roc":
            against = (run.summary.get("ground_truth") or {}).get("name")
            for level, roc in value.items():
                if isinstance(roc, dict) and "fpr" in roc:
                    vs = f" vs {against}" if against else ""
                    out[f"{method_label(run)} · {level}{vs}"] = roc
        else:
            out[method_label(run)] = value
    return out


def missing_ground_truths(store: ResultStore, run_ids: list[int]) -> list[str]:
    """Why each of these runs has no ROC: ``run #N: <reason>``."""
    out = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        if not run.summary.get("roc"):
            reason = (run.summary.get("ground_truth") or {}).get("reason")
            out.append(f"run #{run_id}: {reason or 'no ground truth was given'}")
    return out


def picker(store: ResultStore, wanted: str | None) -> tuple[list[dict[str, Any]], list[int]]:
    """Options for the circuit picker and the runs shown first (the wanted one, else the
    newest run of each of the two newest methods)."""
    runs = circuit_runs(store)
    options = [{"label": f"{method_label(r)} · {r.model_spec}", "value": r.id} for r in runs]
    if wanted and wanted.isdigit():
        return options, [int(wanted)]
    chosen: dict[str, int] = {}
    for run in runs:
        chosen.setdefault(str(run.config.get("method") or run.kind), run.id)
    return options, list(chosen.values())[:2]


def edge_rows(
    store: ResultStore, run_id: int, top_k: int | None, threshold: float | None
) -> list[dict[str, Any]]:
    edges = pruned_edges(store, run_id, top_k, threshold)
    return [
        {
            "source": r.source,
            "target": r.target,
            "score": float(r.score),
            "in_circuit": bool(r.in_circuit),
        }
        for r in edges.itertuples()
    ]


def heads_link(reader: ResultsReader, run_id: int) -> str | None:
    """The Heads page URL of a circuit run's heads (``{node}`` stands for the node name,
    ``a1.h3``): the heads run whose attention patterns show them — the newest finished
    ``heads`` run on the circuit's model, on its prompt set if there is one — else None."""
    source = reader.pattern_run(reader.store.get_run(run_id))
    return None if source is None else f"/heads?run={source.id}&head={{node}}"


def linked_graph(reader: ResultsReader, run_id: int, figure: dict[str, Any]) -> dict[str, Any]:
    """The circuit graph's plotly JSON with its head nodes opening the Heads page."""
    return link_heads(figure, heads_link(reader, run_id))
