"""One circuit-discovery run end to end: score edges, choose the circuit, evaluate it.

``discover`` is what the ``circuit`` job, the bench and the tests call: it builds the task
(clean + corrupted runs), checks that the edge decomposition reproduces the model, scores every
edge with the chosen method, selects the circuit, and evaluates it (faithfulness, the top-k
faithfulness curve, ROC/AUC against a ground truth). Pass counts (``n_forward``,
``n_backward``, ``n_calls``) cover the discovery only; evaluation passes are reported apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from analysis.circuits import evaluate
from analysis.circuits.acdc import AcdcProgress, acdc, candidates_from_attribution
from analysis.circuits.eap import eap_scores
from analysis.circuits.eap_ig import eap_ig_scores
from analysis.circuits.exact import exact_cost, exact_estimate, exact_scores
from analysis.circuits.ground_truth import GroundTruth, score_against
from analysis.circuits.intervention import check_decomposition
from analysis.circuits.task import CircuitTask, build_task
from analysis.prompt_batch import PairBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

METHODS = ("eap", "eap-ig", "acdc", "exact")
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class DiscoverySettings:
    method: str = "eap-ig"
    metric: str = "logit_diff"
    ablation: str = "corrupted"
    level: str = "edge"
    ig_steps: int = 5
    ig_path: str = "edges"
    ig_rule: str = "midpoint"
    qk_fix: bool = True
    tau: float = 0.01
    acdc_prune: float = 0.0
    top_k: int | None = None
    threshold: float | None = None
    target_faithfulness: float = 0.9


@dataclass
class Discovery:
    task: CircuitTask
    scores: torch.Tensor  # [edge]
    kept: torch.Tensor  # [edge] bool
    nodes: dict[str, tuple[float, bool]]
    summary: dict[str, Any] = field(default_factory=dict)
    acdc_state: AcdcProgress | None = None


def _score(
    task: CircuitTask,
    s: DiscoverySettings,
    progress: Progress,
    resume: AcdcProgress | None,
    checkpoint: Callable[[AcdcProgress], None] | None,
) -> tuple[torch.Tensor, torch.Tensor | None, AcdcProgress | None]:
    """(edge scores, ACDC's kept edges or None, ACDC's final state or None)."""
    if s.method == "eap":
        return eap_scores(task, s.qk_fix), None, None
    if s.method == "eap-ig":
        return eap_ig_scores(task, s.ig_steps, s.ig_path, s.qk_fix, s.ig_rule), None, None
    if s.method == "exact":
        return exact_scores(task, lambda f: progress(0.1 + 0.7 * f, "exact patching")), None, None
    if s.method == "acdc":
        final: list[AcdcProgress] = []

        def on_round(prog: AcdcProgress, done: float) -> None:
            final[:] = [prog]
            if checkpoint is not None:
                checkpoint(prog)
            progress(0.1 + 0.7 * done, f"ACDC: {len(prog.scores)} edges tested")

        untested = None
        if s.acdc_prune > 0 and resume is None:
            progress(0.1, f"EAP-IG candidates for ACDC ({s.ig_steps} steps)")
            attribution = eap_ig_scores(task, s.ig_steps, s.ig_path, s.qk_fix, s.ig_rule)
            untested = candidates_from_attribution(task, attribution, s.tau, s.acdc_prune)
        result = acdc(task, s.tau, resume=resume, on_round=on_round, untested=untested)
        return result.scores, result.kept, (final[0] if final else resume)
    raise ValueError(f"unknown method {s.method!r}; choose one of {', '.join(METHODS)}")


def _node_circuit(task: CircuitTask, chosen: set[str]) -> torch.Tensor:
    graph, keep = task.graph, {"input", "logits"} | chosen
    return torch.tensor(
        [
            s in keep and any(o in keep for o in graph.channel_owners(graph.channels[c]))
            for (s, _), c in zip(graph.edges, graph.edge_target.tolist(), strict=True)
        ]
    )


def _select_nodes(task: CircuitTask, scores: torch.Tensor, s: DiscoverySettings) -> torch.Tensor:
    everything = torch.ones_like(scores, dtype=torch.bool)
    ranked = sorted(
        ((v, n) for n, (v, _) in evaluate.node_scores(task.graph, scores, everything).items()
         if n not in ("input", "logits")),
        reverse=True,
    )  # fmt: skip
    if s.top_k is not None:
        return _node_circuit(task, {n for _, n in ranked[: s.top_k]})
    if s.threshold is not None:
        return _node_circuit(task, {n for v, n in ranked if v >= s.threshold})
    masks = [_node_circuit(task, {n for _, n in ranked[:k]}) for k in range(len(ranked) + 1)]
    faith = evaluate.normalised(task, task.ablated_metric(~torch.stack(masks)))
    reached = torch.nonzero(faith >= s.target_faithfulness)
    return masks[int(reached[0]) if len(reached) else len(masks) - 1]


def _select_edges(
    scores: torch.Tensor, curve: dict[str, Any], s: DiscoverySettings
) -> torch.Tensor:
    if s.top_k is not None:
        return evaluate.top_k_mask(scores, s.top_k)
    if s.threshold is not None:
        return scores.abs() >= s.threshold
    k = evaluate.smallest_faithful_k(curve, s.target_faithfulness)
    return evaluate.top_k_mask(scores, scores.shape[0] if k is None else k)


def discover(
    model: TransformerBridge,
    batch: PairBatch,
    settings: DiscoverySettings,
    *,
    truth: GroundTruth | None = None,
    progress: Progress | None = None,
    resume: AcdcProgress | None = None,
    checkpoint: Callable[[AcdcProgress], None] | None = None,
) -> Discovery:
    report = progress or (lambda f, m: None)
    s, start = settings, time.perf_counter()
    report(0.0, "clean and corrupted runs")
    task = build_task(
        model, batch, metric=s.metric, ablation=s.ablation, with_gradients=s.method == "eap"
    )
    forward_s = (time.perf_counter() - start) / task.counter.compute
    decomposition_error = check_decomposition(task.patcher, batch.clean[:1])
    estimate = None
    if s.method == "exact":
        estimate = exact_cost(task) * forward_s
        report(0.1, f"exact patching: {exact_estimate(task, forward_s)}")
    else:
        report(0.1, f"scoring {task.graph.n_edges} edges with {s.method}")
    scores, acdc_kept, state = _score(task, s, report, resume, checkpoint)
    passes = task.counter.n_forward, task.counter.n_backward, task.counter.n_calls
    compute = task.counter.compute
    wall = time.perf_counter() - start
    report(0.8, "evaluating the circuit")
    curve = evaluate.faithfulness_curve(task, scores)
    if acdc_kept is not None:
        kept = acdc_kept
    elif s.level == "node":
        kept = _select_nodes(task, scores, s)
    else:
        kept = _select_edges(scores, curve, s)
    nodes = evaluate.node_scores(task.graph, scores, kept)
    summary: dict[str, Any] = {
        "method": s.method, "metric": s.metric, "ablation": s.ablation, "level": s.level,
        "n_pairs": batch.n_pairs, "n_edges": task.graph.n_edges, "n_nodes": len(nodes),
        "n_edges_in_circuit": int(kept.sum()),
        "n_nodes_in_circuit": sum(1 for _, used in nodes.values() if used),
        "faithfulness": evaluate.faithfulness(task, kept), "faithfulness_curve": curve,
        "metric_clean": task.metric_clean, "metric_corrupt": task.metric_corrupt,
        "n_forward": passes[0], "n_backward": passes[1], "n_calls": passes[2],
        "forward_equivalents": compute,
        "wall_s": wall, "eval_wall_s": time.perf_counter() - start - wall,
        "decomposition_error": decomposition_error,
    }  # fmt: skip
    if s.method in ("eap", "eap-ig"):
        skipped = task.qk_fix_skipped
        summary["qk_fix"] = f"not applied: {skipped}" if skipped else s.qk_fix
    if s.method == "eap-ig":
        summary |= {"ig_steps": s.ig_steps, "ig_path": s.ig_path, "ig_rule": s.ig_rule}
    if estimate is not None:
        summary["estimated_s"] = estimate
    if s.method == "acdc":
        untested, tested = (len(state.untested), len(state.scores)) if state else (0, 0)
        summary |= {"tau": s.tau, "acdc_prune": s.acdc_prune, "n_edges_untested": untested,
                    "n_edges_tested": tested}  # fmt: skip
    if truth is not None:
        owners = {c.name: task.graph.channel_owners(c) for c in task.graph.channels}
        node_values = {n: v for n, (v, _) in nodes.items()}
        edges = list(task.graph.edges)
        summary["roc"] = score_against(
            truth, edges, scores.numpy(), node_values, owners, ablation=s.ablation
        )
    return Discovery(task, scores, kept, nodes, summary, state)


def edge_table(d: Discovery) -> list[tuple[str, str, float, bool]]:
    values = np.nan_to_num(d.scores.numpy().astype(float))
    return [
        (s, t, float(v), bool(k))
        for (s, t), v, k in zip(d.task.graph.edges, values, d.kept.tolist(), strict=True)
    ]
