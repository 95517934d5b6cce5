"""Edge attribution patching (EAP; Syed, Rager & Conmy 2023).

EAP scores every edge u -> v with the first-order Taylor estimate of the metric change when
the edge is ablated, taken at the clean run:

    score(u -> v) = sum over prompts and positions of (a_u - o_u) . d metric / d x_v

where o_u is u's clean output, a_u its ablation value and x_v the input of channel v. Cost: one
clean forward with a backward, one corrupted forward (2 forwards + 1 backward). The sign is
that of the estimated change (``m_ablated - m_clean``): for ``logit_diff`` an important edge has
a large negative score. ``kl`` has zero gradient at the clean run (its minimum), so EAP cannot
use it; use ``logit_diff``/``prob`` or EAP-IG.
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from analysis.circuits.task import CircuitTask


def scores_from_gradients(
    task: CircuitTask, grads: Float[torch.Tensor, "batch pos channel d_model"]
) -> Float[torch.Tensor, " edge"]:
    """(a_u - o_u) . grad_v for every edge, summed over prompts and positions."""
    diff = task.ablated - task.clean_outputs
    dense = torch.einsum("bpud,bptd->ut", diff, grads)
    graph = task.graph
    return dense[graph.edge_source, graph.edge_target]


def eap_scores(task: CircuitTask) -> Float[torch.Tensor, " edge"]:
    """EAP edge scores; the task must be built with ``with_gradients=True``."""
    if task.metric == "kl":
        raise ValueError(
            "EAP cannot use the kl metric: its gradient at the clean run is zero. "
            "Use metric logit_diff or prob, or method eap-ig"
        )
    if task.clean_grads is None:
        raise ValueError("EAP needs the clean-run gradients: build_task(..., with_gradients=True)")
    return scores_from_gradients(task, task.clean_grads)
