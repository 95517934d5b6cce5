"""The measurements behind ``zoo:code-6l``'s MECHANISM.md and its ground truths.

Nothing in that model was planted, so everything said about it is measured here with the tool's
own code:

- ``head_types``: the ``heads`` statistics (``analysis.heads``: detect_head's previous-token,
  duplicate-token and induction scores, BOS mass, entropy, local mass) on two prompt sets —
  held-out stdlib code windows and random tokens repeated twice — plus the weight-based OV
  copying and successor scores. A head is a *clear member* of a type when its score passes that
  type's bar in ``CLEAR``, fixed before looking at this model (TransformerLens' detect_head
  scores are fractions of attention mass; 0.4 is most of a head's attention on the pattern).
- ``exact_ground_truth``: the reference circuit of a task from **exact** edge patching (every
  edge patched alone, ``analysis.circuits.exact``): an edge belongs to it when patching it alone
  moves the metric by at least ``REFERENCE_FRACTION`` of the clean - corrupted metric gap. One
  rule for every task; it is the definition EAP, EAP-IG and ACDC approximate.
- ``method_scores``: EAP, EAP-IG and ACDC on the same pairs, scored against that reference
  (edge and node AUC), with the Spearman correlation of their signed edge scores with the
  exact effects, and exact patching on pairs of another seed (how stable the reference is).

``python -m analysis.zoo.code_evidence [--write]`` prints all of it as JSON (``--write`` also
writes ``ground_truths/<task>.json`` and ``evidence.json`` into the model's folder).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformer_lens.model_bridge import TransformerBridge

from analysis import heads as head_stats
from analysis.circuits import evaluate
from analysis.circuits.discover import Discovery, DiscoverySettings, discover
from analysis.circuits.ground_truth import GroundTruth
from analysis.prompt_batch import build_pair_batch
from analysis.prompts.code_tasks import CODE_GENERATORS
from analysis.prompts.generators import generate_pairs
from analysis.zoo import GROUND_TRUTH_DIR, zoo_folder
from analysis.zoo.code_corpus import corpus_files, split_files
from analysis.zoo.code_lm import encode_files

NAME = "code-6l"
TASKS = tuple(CODE_GENERATORS)
REFERENCE_FRACTION = 0.01  # |exact effect| >= 1 % of |metric_clean - metric_corrupt|
N_PAIRS = 8
REFERENCE_SEED = 0  # pairs the reference and the methods are computed on
OTHER_SEED = 1  # exact patching on other pairs: the reference's own sampling noise
# Clear members: score >= bar (fractions of attention mass; OV copying is in [-1, 1]).
CLEAR = {
    "prev_token_score": 0.4,
    "duplicate_token_score": 0.4,
    "induction_score": 0.4,
    "bos_mass": 0.6,
    "ov_copying_score": 0.8,
    "successor_score": 0.5,
}
METHODS = {
    "eap": DiscoverySettings(method="eap"),
    "eap-ig": DiscoverySettings(method="eap-ig", ig_steps=5),
    "acdc": DiscoverySettings(method="acdc", metric="kl", tau=0.01),
}


def code_windows(model: TransformerBridge, n: int = 24, length: int = 128) -> list[list[int]]:
    """``n`` held-out stdlib windows of ``length`` tokens, ``<bos>`` first, evenly spaced."""
    _, validation = split_files(corpus_files())
    stream = encode_files(model.tokenizer, validation)
    step = (len(stream) - length) // n
    bos = int(model.tokenizer.bos_token_id)
    return [[bos, *stream[i * step : i * step + length - 1].tolist()] for i in range(n)]


def repeated_tokens(model: TransformerBridge, n: int = 24, half: int = 40) -> list[list[int]]:
    """``<bos>`` + ``half`` random (non-special) tokens, twice: detect_head's induction setting."""
    g = torch.Generator().manual_seed(0)
    special = set(model.tokenizer.all_special_ids)
    allowed = torch.tensor([t for t in range(int(model.cfg.d_vocab)) if t not in special])
    bos = int(model.tokenizer.bos_token_id)
    out = []
    for _ in range(n):
        seq = allowed[torch.randint(0, len(allowed), (half,), generator=g)].tolist()
        out.append([bos, *seq, *seq])
    return out


def pattern_scores(model: TransformerBridge, prompts: list[list[int]]) -> dict[str, np.ndarray]:
    """The heads job's per-head statistics [layer, head], averaged over ``prompts``."""
    patterns = []
    for prompt in prompts:
        tokens = torch.tensor([prompt])
        patterns += head_stats.prompt_patterns(model, tokens, [len(prompt)])
    width = max(len(p) for p in prompts)
    tokens = torch.tensor([p + [0] * (width - len(p)) for p in prompts])
    averaged = head_stats.average_statistics(patterns, tokens)
    return {k: v.numpy() for k, v in averaged.items()}


def clear_members(scores: np.ndarray, bar: float) -> list[str]:
    layers, heads = np.nonzero(scores >= bar)
    return [
        f"a{layer}.h{head}" for layer, head in zip(layers.tolist(), heads.tolist(), strict=True)
    ]


def head_types(model: TransformerBridge) -> dict[str, Any]:
    code = pattern_scores(model, code_windows(model))
    repeated = pattern_scores(model, repeated_tokens(model))
    weights = {"ov_copying_score": head_stats.ov_copying_scores(model).numpy()}
    successor = head_stats.successor_scores(model)
    if successor is not None:
        weights["successor_score"] = successor.numpy()
    sets = {"code": code, "repeated_tokens": repeated, "weights": weights}
    members = {
        f"{where}/{kind}": clear_members(grid, CLEAR[kind])
        for where, grids in sets.items()
        for kind, grid in grids.items()
        if kind in CLEAR
    }
    rounded = {
        where: {k: np.round(v, 3).tolist() for k, v in grids.items()}
        for where, grids in sets.items()
    }
    return {"clear_bar": CLEAR, "clear_members": members, "scores": rounded}


def task_batch(model: TransformerBridge, task: str, seed: int) -> Any:
    return build_pair_batch(model, generate_pairs(model, task, N_PAIRS, seed=seed))


def reference_edges(d: Discovery) -> tuple[list[tuple[str, str]], float]:
    """Edges whose exact single-edge effect reaches the bar; and the bar (metric units)."""
    gap = abs(d.task.metric_clean - d.task.metric_corrupt)
    bar = REFERENCE_FRACTION * gap
    chosen = (d.scores.abs() >= bar).tolist()
    return [e for e, keep in zip(d.task.graph.edges, chosen, strict=True) if keep], bar


def reference_faithfulness(d: Discovery, edges: list[tuple[str, str]]) -> float:
    """Faithfulness of the circuit made of exactly the reference edges."""
    wanted = set(edges)
    kept = torch.tensor([e in wanted for e in d.task.graph.edges])
    return evaluate.faithfulness(d.task, kept)


def exact_ground_truth(model: TransformerBridge, task: str) -> tuple[dict[str, Any], Discovery]:
    """The task's reference circuit (``ground_truths/<task>.json``) and the exact run."""
    d = discover(model, task_batch(model, task, REFERENCE_SEED), DiscoverySettings(method="exact"))
    edges, bar = reference_edges(d)
    graph = d.task.graph
    readers = {
        n for _, t in edges for n in graph.channel_owners(graph.channels[graph.channel_index(t)])
    }
    nodes = sorted({s for s, _ in edges} | readers)
    data = {
        "model": f"zoo:{NAME}",
        "task": task,
        "description": f"{task} pairs from `headlab prompts generate {task}` "
        f"(n={N_PAIRS}, seed={REFERENCE_SEED}); see analysis/prompts/code_tasks.py",
        "source": "exact edge patching (analysis.circuits.exact), corrupted ablation, "
        f"logit_diff; an edge is in the circuit when patching it alone moves the metric by "
        f">= {REFERENCE_FRACTION:g} of |clean - corrupted| ({bar:.4f} logits)",
        "nodes": [n for n in nodes if n not in ("input", "logits")],
        "edges": [list(e) for e in edges],
        "evidence": {
            "n_edges": d.task.graph.n_edges,
            "n_positive": len(edges),
            "metric_clean": round(d.task.metric_clean, 4),
            "metric_corrupt": round(d.task.metric_corrupt, 4),
            "faithfulness_of_reference": round(reference_faithfulness(d, edges), 4),
            "wall_s": round(d.summary["wall_s"], 1),
        },
    }
    return data, d


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def misranked(d: Discovery, exact: Discovery, truth: GroundTruth, top: int = 5) -> dict[str, Any]:
    """Where a method's edge AUC is lost: each reference edge costs the fraction of
    non-reference edges scored at least as high (|score|, ties count half); the ``top`` costliest
    reference edges, with their exact effect as a fraction of the metric gap."""
    wanted = {tuple(e) for e in truth.edges}
    edges = list(d.task.graph.edges)
    is_ref = np.array([e in wanted for e in edges])
    score = np.abs(np.nan_to_num(d.scores.numpy().astype(float)))
    negatives = np.sort(score[~is_ref])
    gap = abs(exact.task.metric_clean - exact.task.metric_corrupt)
    costs = []
    for e in np.flatnonzero(is_ref):
        above = len(negatives) - np.searchsorted(negatives, score[e], side="right")
        ties = np.searchsorted(negatives, score[e], side="right") - np.searchsorted(
            negatives, score[e], side="left"
        )
        costs.append(((above + ties / 2) / len(negatives), int(e)))
    costs.sort(reverse=True)
    effects = exact.scores.numpy()
    return {
        "reference_edges_scored_zero": int((score[is_ref] == 0).sum()),
        "auc_lost": round(float(sum(c for c, _ in costs)) / max(len(costs), 1), 4),
        "costliest": [
            {
                "edge": "->".join(edges[e]),
                "auc_cost": round(c / max(len(costs), 1), 4),
                "method_score": round(float(d.scores[e]), 5),
                "exact_effect_of_gap": round(float(effects[e]) / gap, 4),
            }
            for c, e in costs[:top]
        ],
    }


def method_scores(
    model: TransformerBridge, task: str, truth: GroundTruth, exact: Discovery
) -> list[dict[str, Any]]:
    batch = task_batch(model, task, REFERENCE_SEED)
    exact_effects = exact.scores.numpy()
    rows = []
    runs = {label: discover(model, batch, s, truth=truth) for label, s in METHODS.items()}
    other = task_batch(model, task, OTHER_SEED)
    exact_other = DiscoverySettings(method="exact")
    runs[f"exact (seed {OTHER_SEED} pairs)"] = discover(model, other, exact_other, truth=truth)
    for label, d in runs.items():
        roc = d.summary["roc"]
        rows.append(
            {
                "task": task,
                "method": label,
                "edge_auc": round(roc["edge"]["auc"], 4),
                "node_auc": round(roc["node"]["auc"], 4),
                "spearman_vs_exact": round(spearman(d.scores.numpy(), exact_effects), 4),
                "faithfulness": round(float(d.summary["faithfulness"]), 4),
                "n_edges_in_circuit": d.summary["n_edges_in_circuit"],
                "wall_s": round(d.summary["wall_s"], 1),
                "misranked": misranked(d, exact, truth),
            }
        )
    return rows


def collect(
    model: TransformerBridge,
    folder: Path | None = None,
    tasks: tuple[str, ...] = TASKS,
    with_methods: bool = True,
) -> dict[str, Any]:
    """Head types, and per task the exact reference and the methods scored against it; with
    ``folder`` the references are written to ``folder/ground_truths/<task>.json``."""
    out: dict[str, Any] = {"head_types": head_types(model), "tasks": {}, "methods": []}
    for task in tasks:
        start = time.perf_counter()
        data, exact = exact_ground_truth(model, task)
        truth = GroundTruth.from_json(data, f"{NAME}/{task}")
        if folder is not None:
            path = folder / GROUND_TRUTH_DIR / f"{task}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=1) + "\n")
        out["tasks"][task] = data["evidence"]
        if with_methods:
            out["methods"] += method_scores(model, task, truth, exact)
        out["tasks"][task]["total_wall_s"] = round(time.perf_counter() - start, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    from analysis.zoo.checkpoint import load_zoo_bridge

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=zoo_folder(NAME))
    parser.add_argument("--write", action="store_true", help="write ground_truths/ and evidence")
    parser.add_argument("--task", action="append", choices=TASKS, help="only these tasks")
    parser.add_argument("--no-methods", action="store_true", help="only the exact references")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = load_zoo_bridge(args.folder)
    model.enable_compatibility_mode()
    tasks = tuple(args.task or TASKS)
    result = collect(model, args.folder if args.write else None, tasks, not args.no_methods)
    text = json.dumps(result, indent=1)
    if args.write and tasks == TASKS and not args.no_methods:
        (args.folder / "evidence.json").write_text(text + "\n")
    print(text)  # noqa: T201 — a command-line report


if __name__ == "__main__":
    main()
