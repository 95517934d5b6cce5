"""EAP with integrated gradients on the inputs (EAP-IG; Hanna, Pezzelle & Belinkov 2024).

EAP's gradient is taken at the clean run only; EAP-IG averages it along the straight path from
the ablated to the clean *input embeddings* (the ``input`` node's output), with the rest of
the model running normally on the interpolated embeddings:

    score(u -> v) = (a_u - o_u) . (1/m) sum_k d metric / d x_v  at  e_a + alpha_k (e_clean - e_a)

with midpoint steps alpha_k = (k + 1/2) / m, k = 0..m-1. Cost: m forwards with backwards plus
the clean and the corrupted forward (m + 2 forwards, m backwards). Same sign convention as EAP.
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from analysis.circuits.eap import scores_from_gradients
from analysis.circuits.task import CircuitTask


def integrated_gradients(
    task: CircuitTask, steps: int
) -> Float[torch.Tensor, "batch pos channel d_model"]:
    """Mean d metric / d x_v over ``steps`` points between ablated and clean embeddings."""
    if steps < 1:
        raise ValueError(f"ig_steps must be at least 1, got {steps}")
    clean_in, ablated_in = task.clean_outputs[:, :, 0], task.ablated[:, :, 0]
    total: torch.Tensor | None = None
    for k in range(steps):
        alpha = (k + 0.5) / steps
        grads, _ = task.input_gradients(ablated_in + alpha * (clean_in - ablated_in))
        total = grads if total is None else total + grads
    assert total is not None
    return total / steps


def eap_ig_scores(task: CircuitTask, steps: int = 5) -> Float[torch.Tensor, " edge"]:
    return scores_from_gradients(task, integrated_gradients(task, steps))
