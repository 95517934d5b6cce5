"""Known circuits and ROC/AUC scoring of discovered ones against them. Torch-free.

A ground truth is a JSON file (``ground_truths/<task>.json`` in a zoo model):
``{"model", "task", "nodes": [...], "edges": [[source, target], ...], "source", "evidence"}``,
optionally with ``"positional_edges": [[source, target], ...]``: circuit edges (a subset of
``edges``) that carry only *position* (e.g. ``input -> a0.h2<q>`` of a previous-token head whose
query and key read the positional embeddings). Clean and corrupted prompts share positions, and a
position-wise mean keeps them, so the ``corrupted`` and ``mean`` ablations cannot change what
such an edge carries: no method using them can see it. Scoring with those ablations therefore
leaves positional edges out entirely (neither positives nor negatives); with ``zero`` ablation
(which removes positions too) they are ordinary positives.
A ground truth holds for one task: ``"task"`` is the prompt generator's task name
(``analysis.prompts.generators.GENERATORS``), since a circuit found on one contrast is another
circuit than one found on another. ``choose_ground_truth`` finds the one for a run from the
``ground_truth`` spec and the prompt set's task:

- empty / ``zoo``: the zoo model's file for that task,
  ``analysis/zoo/models/<name>/ground_truths/<task>.json`` (only for ``zoo:<name>`` models); a
  prompt set of another task, or one that names no task (an imported file), gets none, and the
  choice says why;
- a reference name: ``analysis/reference/<name>.json`` (published GPT-2 circuits, node sets);
- a path to a JSON file in the same format.

A named ground truth of another task than the prompt set's is refused (``GroundTruthError``).

Edge labels: an edge is positive when it is listed. A ground truth with nodes but no edges (the
published circuits are node sets) labels an edge positive when its source and the node reading
its target channel are both circuit nodes (``input`` and ``logits`` always count as circuit
nodes). Node labels (``input``/``logits`` excluded): listed nodes are positive.

ROC: edges ranked by |score|; ties share their rank, so the AUC is the Mann-Whitney statistic
(probability that a random positive outscores a random negative, ties counting one half).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ANALYSIS_DIR = Path(__file__).resolve().parents[1]
ZOO_DIR = ANALYSIS_DIR / "zoo" / "models"
REFERENCE_DIR = ANALYSIS_DIR / "reference"
ENDPOINTS = ("input", "logits")
POSITION_KEEPING_ABLATIONS = ("corrupted", "mean")  # ablations under which positions survive


class GroundTruthError(ValueError):
    """A ground truth cannot be found or does not fit the model's graph."""


@dataclass(frozen=True)
class GroundTruth:
    nodes: frozenset[str]
    edges: frozenset[tuple[str, str]]
    model: str | None = None
    task: str | None = None
    source: str | None = None
    positional_edges: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def from_json(cls, data: dict[str, Any], origin: str) -> GroundTruth:
        if not isinstance(data.get("nodes", []), list) or not isinstance(
            data.get("edges", []), list
        ):
            raise GroundTruthError(f"{origin}: 'nodes' and 'edges' must be lists")
        edges = _edge_set(data.get("edges", []), origin, "edges")
        positional = _edge_set(data.get("positional_edges", []), origin, "positional_edges")
        nodes = frozenset(str(n) for n in data.get("nodes", []))
        if not nodes and not edges:
            raise GroundTruthError(f"{origin}: the ground truth lists no nodes and no edges")
        if positional - edges:
            shown = ", ".join(f"{s}->{t}" for s, t in sorted(positional - edges)[:5])
            raise GroundTruthError(
                f"{origin}: positional_edges must also be listed in 'edges'; not there: {shown}"
            )
        model, task, source = data.get("model"), data.get("task"), data.get("source")
        return cls(nodes, edges, model, task, source, positional)


def _edge_set(items: Any, origin: str, key: str) -> frozenset[tuple[str, str]]:
    if not isinstance(items, list):
        raise GroundTruthError(f"{origin}: '{key}' must be a list of [source, target]")
    try:
        return frozenset((str(s), str(t)) for s, t in items)
    except (TypeError, ValueError):
        message = f"{origin}: every item of '{key}' must be [source, target]"
        raise GroundTruthError(message) from None


def zoo_ground_truth_dir(model_spec: str) -> Path:
    return ZOO_DIR / model_spec.removeprefix("zoo:") / "ground_truths"


def zoo_ground_truth_tasks(model_spec: str) -> list[str]:
    """The tasks a zoo model has a ground truth for (none for other models)."""
    if not model_spec.startswith("zoo:"):
        return []
    return sorted(p.stem for p in zoo_ground_truth_dir(model_spec).glob("*.json"))


def resolve_ground_truth_path(spec: str | None, model_spec: str, task: str | None) -> Path:
    """Where the ground truth named by ``spec`` lives (see the module docstring)."""
    if not spec or spec == "zoo":
        if not model_spec.startswith("zoo:"):
            raise GroundTruthError(
                f"model {model_spec} is not a zoo model, so it has no built-in ground truth; "
                "pass --ground-truth with a reference name or a JSON file"
            )
        known = ", ".join(zoo_ground_truth_tasks(model_spec)) or "none"
        if task is None:
            raise GroundTruthError(
                f"the prompt set names no task, so none of {model_spec}'s ground truths "
                f"(tasks: {known}) applies; generate the set with `headlab prompts generate` "
                "or pass --ground-truth"
            )
        path = zoo_ground_truth_dir(model_spec) / f"{task}.json"
        if not path.is_file():
            raise GroundTruthError(
                f"{model_spec} has no ground truth for task {task!r} (it has: {known})"
            )
    elif (REFERENCE_DIR / f"{spec}.json").is_file():
        path = REFERENCE_DIR / f"{spec}.json"
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        references = sorted(p.stem for p in REFERENCE_DIR.glob("*.json"))
        raise GroundTruthError(
            f"no ground truth at {path}; give a JSON file path or one of the references: "
            f"{', '.join(references) or '(none)'}"
        )
    return path


def load_ground_truth(spec: str | None, model_spec: str, task: str | None) -> GroundTruth:
    """The ground truth ``spec`` names (or the zoo model's one for ``task``); a named one that
    holds for another task than ``task`` is refused."""
    path = resolve_ground_truth_path(spec, model_spec, task)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GroundTruthError(f"{path} is not valid JSON: {exc}") from None
    truth = GroundTruth.from_json(data, str(path))
    if task is not None and truth.task is not None and truth.task != task:
        raise GroundTruthError(
            f"ground truth {spec} holds for task {truth.task!r}, but the prompt set is task "
            f"{task!r}; pass a ground truth of that task, or none"
        )
    return truth


@dataclass(frozen=True)
class GroundTruthChoice:
    """The ground truth a run is scored against, or why it has none."""

    truth: GroundTruth | None
    name: str | None  # "zoo:<model>/<task>", a reference name or a file name
    reason: str | None = None  # why there is none

    def summary(self) -> dict[str, Any]:
        """What the run's summary records under ``ground_truth``."""
        if self.truth is None:
            return {"name": None, "reason": self.reason}
        return {"name": self.name, "task": self.truth.task, "model": self.truth.model}


def choose_ground_truth(spec: str | None, model_spec: str, task: str | None) -> GroundTruthChoice:
    """The ground truth for a run on a prompt set of ``task``. With no ``spec`` a model without
    a ground truth for that task gets none (and the reason); a named one must load and fit."""
    if spec is None:
        try:
            resolve_ground_truth_path(None, model_spec, task)
        except GroundTruthError as exc:
            return GroundTruthChoice(None, None, str(exc))
    truth = load_ground_truth(spec, model_spec, task)
    if not spec or spec == "zoo":
        name = f"{model_spec}/{truth.task}"
    else:
        name = spec if (REFERENCE_DIR / f"{spec}.json").is_file() else Path(spec).name
    return GroundTruthChoice(truth, name)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``{"fpr": [...], "tpr": [...], "auc": x}`` ranking by score (higher = more likely)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise GroundTruthError(
            f"ROC needs positives and negatives; got {n_pos} positive and {n_neg} negative items"
        )
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    cut = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each tie group
    tp, fp = np.cumsum(y)[cut], np.cumsum(~y)[cut]
    fpr, tpr = np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]
    auc = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc}


def owner_node(target: str) -> str:
    """The node that reads a channel: 'a1.h2<k>' -> 'a1.h2'; 'm3' -> 'm3'."""
    return target.split("<", 1)[0]


def edge_labels(
    truth: GroundTruth, edges: list[tuple[str, str]], owners: dict[str, list[str]] | None = None
) -> np.ndarray:
    """Positive/negative label of every graph edge (``owners``: channel -> reading nodes)."""
    known = set(edges)
    unknown = sorted(e for e in truth.edges if e not in known)
    if unknown:
        shown = ", ".join(f"{s}->{t}" for s, t in unknown[:5])
        raise GroundTruthError(
            f"the ground truth has {len(unknown)} edge(s) not in this model's graph: {shown}"
        )
    if truth.edges:
        return np.array([e in truth.edges for e in edges])
    members = set(truth.nodes) | set(ENDPOINTS)
    owners = owners or {}
    return np.array(
        [
            s in members and any(o in members for o in owners.get(t, [owner_node(t)]))
            for s, t in edges
        ]
    )


def node_labels(truth: GroundTruth, nodes: list[str]) -> np.ndarray:
    names = set(truth.nodes) or {s for s, _ in truth.edges} | {
        owner_node(t) for _, t in truth.edges
    }
    unknown = sorted(n for n in names if n not in set(nodes) and n not in ENDPOINTS)
    if unknown:
        raise GroundTruthError(f"the ground truth names nodes not in this model: {unknown[:5]}")
    return np.array([n in names for n in nodes])


def observable_edges(
    truth: GroundTruth, edges: list[tuple[str, str]], ablation: str | None
) -> np.ndarray:
    """Which graph edges an ablation can see: all, except the ground truth's positional edges
    under an ablation that keeps positions (``corrupted``, ``mean``)."""
    if ablation not in POSITION_KEEPING_ABLATIONS:
        return np.ones(len(edges), dtype=bool)
    return np.array([e not in truth.positional_edges for e in edges], dtype=bool)


def score_against(
    truth: GroundTruth,
    edges: list[tuple[str, str]],
    edge_scores: np.ndarray,
    node_scores: dict[str, float],
    owners: dict[str, list[str]] | None = None,
    ablation: str | None = None,
) -> dict[str, Any]:
    """``{"edge": roc, "node": roc}`` of |score| against the ground truth. With ``ablation``
    ``corrupted``/``mean`` the positional edges are left out (``edge["n_excluded"]`` says how
    many)."""
    labels = edge_labels(truth, edges, owners)
    seen = observable_edges(truth, edges, ablation)
    out: dict[str, Any] = {"edge": roc_curve(np.abs(edge_scores)[seen], labels[seen])}
    out["edge"]["n_excluded"] = int((~seen).sum())
    nodes = [n for n in node_scores if n not in ENDPOINTS]
    values = np.array([abs(node_scores[n]) for n in nodes])
    out["node"] = roc_curve(values, node_labels(truth, nodes))
    return out
