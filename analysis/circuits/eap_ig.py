"""EAP with integrated gradients (EAP-IG; Hanna, Pezzelle & Belinkov 2024), two paths.

EAP's gradient is taken at the clean run only; EAP-IG averages it over m points of a path from
the ablated to the clean model, by default midpoint steps alpha_k = (k + 1/2) / m, k = 0..m-1
(``rule="midpoint"``); ``rule="left"`` takes alpha_k = k / m, k = 0..m-1, the points of
hannamw/EAP-IG's ``get_scores_eap_ig`` (its first step is the ablated model itself). Both are
Riemann sums of the same integral and agree as m grows; the midpoint sum's error is O(1/m^2),
the left sum's O(1/m), so at equal m the midpoint is the closer one (docs/circuits.md):

- ``path="edges"`` (default): the straight line in *edge-mask* space. At alpha every edge
  u -> v carries (1 - alpha) of its ablation, i.e. x_v = sum over u of alpha o_u + (1 - alpha)
  a_u (plus biases) with o_u u's output in that same run: every activation interpolated at
  once, so alpha = 0 is the fully ablated (corrupted) model and alpha = 1 the clean one. The
  score is integrated gradients of the metric w.r.t. each edge's ablation coefficient c_e,

      score(u -> v) = (1/m) sum_k (a_u - o_u(alpha_k)) . d metric / d x_v (alpha_k),

  which is complete: the scores of all edges sum to m_ablated - m_clean (error O(1/m^2)).
  This is the "activations" flavour of Hanna et al. (their IG-activations interpolates one
  layer at a time, costing m passes per layer; Marks et al. 2024 do the same per node group)
  with all layers moved together, so it costs m passes in all.
- ``path="inputs"``: only the input embeddings are interpolated, the rest of the model runs
  normally on them, and the difference is fixed at the clean one,
  ``score = (a_u - o_u) . (1/m) sum_k d metric / d x_v``; complete on the ``input`` node.
  This is Hanna et al.'s EAP-IG as published.

``qk_fix`` (default on) scores query/key edges at every step through the exact attention
softmax (``qk_fix.py``, AtP*). Measured on ``zoo:induction-2l`` (16 pairs, m = 5, edge AUC
against its ground truth): inputs 0.863, inputs + fix 0.941, edges 0.887, edges + fix 0.971.
The default is the combination that recovers the known circuit; see docs/circuits.md.

Cost: m forwards with backwards plus the clean and the corrupted forward (m + 2 forwards,
m backwards) on either path. Same sign convention as EAP.
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from analysis.circuits.eap import dense_scores, edge_values
from analysis.circuits.qk_fix import NodeDiffs, qk_fix_applicable
from analysis.circuits.task import CircuitTask, GradientRun

IG_PATHS = ("edges", "inputs")
IG_RULES = ("midpoint", "left")


def step_points(steps: int, rule: str = "midpoint") -> list[float]:
    """The m points alpha_k in [0, 1) the gradients are taken at."""
    if rule not in IG_RULES:
        raise ValueError(f"unknown ig_rule {rule!r}; choose one of {', '.join(IG_RULES)}")
    offset = 0.5 if rule == "midpoint" else 0.0
    return [(k + offset) / steps for k in range(steps)]


def _step(task: CircuitTask, alpha: float, path: str) -> tuple[GradientRun, torch.Tensor]:
    """The gradient run at alpha and the edges' input change a_u - o_u used with it."""
    if path == "inputs":
        clean_in, ablated_in = task.clean_outputs[:, :, 0], task.ablated[:, :, 0]
        run = task.gradient_run(input_override=ablated_in + alpha * (clean_in - ablated_in))
        return run, task.ablated - task.clean_outputs
    run = task.gradient_run(fraction=1.0 - alpha)
    return run, task.ablated - run.outputs


def eap_ig_scores(
    task: CircuitTask,
    steps: int = 5,
    path: str = "edges",
    qk_fix: bool = True,
    rule: str = "midpoint",
) -> Float[torch.Tensor, " edge"]:
    if steps < 1:
        raise ValueError(f"ig_steps must be at least 1, got {steps}")
    if path not in IG_PATHS:
        raise ValueError(f"unknown ig_path {path!r}; choose one of {', '.join(IG_PATHS)}")
    total: torch.Tensor | None = None
    diffs: NodeDiffs | None = None  # the inputs path's diff is the same at every step
    for k, alpha in enumerate(step_points(steps, rule)):
        run, diff = _step(task, alpha, path)
        if qk_fix and k == 0:
            qk_fix = qk_fix_applicable(task, run)  # False (linear, logged) when unsupported
        if path == "inputs" and diffs is None:
            diffs = NodeDiffs.of(task.patcher, diff)
        dense = dense_scores(task, run, diff, qk_fix, diffs)
        total = dense if total is None else total + dense
    assert total is not None
    return edge_values(task, total / steps)
