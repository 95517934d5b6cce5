"""Edge attribution patching (EAP; Syed, Rager & Conmy 2023), with AtP*'s QK fix.

EAP scores every edge u -> v with the first-order Taylor estimate of the metric change when
the edge is ablated, taken at the clean run:

    score(u -> v) = sum over prompts and positions of (a_u - o_u) . d metric / d x_v

where o_u is u's clean output, a_u its ablation value and x_v the input of channel v. The sign
is that of the estimated change (``m_ablated - m_clean``): for ``logit_diff`` an important edge
has a large negative score. ``kl`` has zero gradient at the clean run (its minimum), so EAP
cannot use it; use ``logit_diff``/``prob`` or EAP-IG.

``qk_fix`` (default on): edges into a head's query or key are scored through the exact change of
the attention pattern and linearised only from the pattern on (``qk_fix.py``; Kramár et al.
2024). Without it, a query/key edge acting through saturated attention gets a score near zero
whatever its real effect (measured on ``zoo:induction-2l``: a key edge with exact effect -2.1
logits scored +0.28 linearly, -2.65 with the fix; edge AUC 0.903 -> 0.993). ``qk_fix=False`` is
the plain linearisation of Syed et al. Where the model's attention cannot be reproduced from
its q/k hooks (ALiBi, soft-capping) the fix falls back to the linear scores and says why in
``task.qk_fix_skipped`` (and the log).

Cost: one clean forward with a backward (the gradients w.r.t. channel inputs and attention
patterns come from the same backward), one corrupted forward: 2 forwards + 1 backward; the fix
adds no model pass (one projection of every node's diff per layer and one softmax per q/k
edge; on a GPT-2-small shape about as long as the backward).
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from analysis.circuits.intervention import NodeValues
from analysis.circuits.qk_fix import NodeDiffs, apply_qk_fix, qk_fix_applicable
from analysis.circuits.task import CircuitTask, GradientRun


def linear_scores(
    task: CircuitTask, run: GradientRun, diff: NodeValues, skip_qk: bool = False
) -> Float[torch.Tensor, "node channel"]:
    """(a_u - o_u) . grad_v for every edge u -> v at one gradient run, summed over prompts and
    positions (0 where u does not feed v, and in the q/k columns with ``skip_qk``): one batched
    matmul over (prompt, position), [node, d_model] @ [d_model, channel], for the v, MLP and
    logit channels and one for the q and k channels, so that the scores of the first do not
    depend on ``skip_qk``."""
    b, p, n_nodes, d = diff.shape
    dense = diff.new_zeros(n_nodes, len(task.graph.channels))
    per_position = diff.reshape(b * p, n_nodes, d)
    sets = [[g for g in run.groups if g.kind not in ("q", "k")]]
    if not skip_qk:
        sets.append([g for g in run.groups if g.kind in ("q", "k")])
    for mine in sets:
        grads = torch.cat([g.channel_major for g in mine]).view(-1, b * p, d)  # [c, bp, d]
        scores = torch.bmm(per_position, grads.permute(1, 2, 0)).sum(0)  # [node, c]
        columns = torch.cat([torch.arange(g.start, g.end) for g in mine])
        dense[:, columns] = scores
        for g in mine:  # not an edge: u comes after the channel's inputs
            dense[g.n_up :, g.start : g.end] = 0
    return dense


def dense_scores(
    task: CircuitTask,
    run: GradientRun,
    diff: NodeValues,
    qk_fix: bool,
    diffs: NodeDiffs | None = None,
) -> Float[torch.Tensor, "node channel"]:
    """``linear_scores``, with the q/k columns from the exact softmax when ``qk_fix``."""
    dense = linear_scores(task, run, diff, skip_qk=qk_fix)
    return apply_qk_fix(dense, task.patcher, run, diff, diffs) if qk_fix else dense


def edge_values(task: CircuitTask, dense: torch.Tensor) -> Float[torch.Tensor, " edge"]:
    graph = task.graph
    return dense[graph.edge_source, graph.edge_target]


def eap_scores(task: CircuitTask, qk_fix: bool = True) -> Float[torch.Tensor, " edge"]:
    """EAP edge scores; the task must be built with ``with_gradients=True``."""
    if task.metric == "kl":
        raise ValueError(
            "EAP cannot use the kl metric: its gradient at the clean run is zero. "
            "Use metric logit_diff or prob, or method eap-ig"
        )
    run = task.clean_gradients
    if run is None:
        raise ValueError("EAP needs the clean-run gradients: build_task(..., with_gradients=True)")
    qk_fix = qk_fix and qk_fix_applicable(task, run)
    diff = task.ablated - task.clean_outputs
    return edge_values(task, dense_scores(task, run, diff, qk_fix))
