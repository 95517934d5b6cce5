"""Gradient head importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?").

``I_h = mean over prompts x of |∂L(x)/∂ξ_h|`` at a mask ξ (all ones: the model itself), with
``ξ`` the gate on head outputs of ``analysis.importance.mask`` and ``L`` the LM loss or the task
metric (``analysis.importance.objective``). The absolute value is taken per prompt, then
averaged: the expected absolute sensitivity, as Michel, not the absolute mean.

One forward and one backward per chunk of prompts: each layer's gate is a leaf tensor with one
row per prompt, so ``∂(Σ_b L_b)/∂ξ[b, h] = ∂L_b/∂ξ_h`` gives every prompt's sensitivity at once
(rows never interact). With zero ablation ``∂L/∂ξ_h = Σ_pos,d z_h · ∂L/∂z'_h``; with mean or
resample it is ``Σ (z_h - s_h) · ∂L/∂z'_h``, the first-order estimate of that ablation.

Michel's per-layer normalisation divides each layer's importances by their ℓ2 norm over the
layer's heads. The reference is autograd-free: central finite differences of ``L`` in
``ξ_h`` per prompt (five points, four forwards per head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float

from analysis.importance.evaluate import prompt_chunks
from analysis.importance.mask import Sources, gate_hooks
from analysis.importance.objective import objective_of
from analysis.patching.exact import check_finite
from analysis.prompt_batch import PairBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

Grads = Float[torch.Tensor, "prompt layer head"]
STENCIL = ((2.0, -1.0), (1.0, 8.0), (-1.0, -8.0), (-2.0, 1.0))  # (step in ε, weight)


def _base(model: TransformerBridge, base: torch.Tensor | None) -> torch.Tensor:
    shape = (int(model.cfg.n_layers), int(model.cfg.n_heads))
    return torch.ones(shape) if base is None else base.float().reshape(shape)


def _select(sources: Sources, index: list[int]) -> Sources:
    return None if sources is None else {layer: s[index] for layer, s in sources.items()}


def head_gradients(
    model: TransformerBridge,
    batch: PairBatch,
    objective: str,
    metric: str,
    sources: Sources,
    base: Float[torch.Tensor, "layer head"] | None = None,
) -> Grads:
    """``∂L_b/∂ξ_h`` for every prompt ``b`` and head, at the mask ``base`` (default all ones)."""
    gate = _base(model, base)
    layers = gate.shape[0]
    out = []
    for index in prompt_chunks(model, batch, backward=True):
        sub = batch.select(index)
        gates = {
            layer: gate[layer].expand(len(index), -1).clone().to(sub.clean.device)
            for layer in range(layers)
        }
        for g in gates.values():
            g.requires_grad_(True)
        with torch.enable_grad(), model.hooks(fwd_hooks=gate_hooks(gates, _select(sources, index))):
            logits = model(sub.clean)
            check_finite(logits, "the masked run's logits")
            total = objective_of(objective, logits, sub, metric).sum()
            grads = torch.autograd.grad(total, [gates[layer] for layer in range(layers)])
        out.append(torch.stack([g.detach().float().cpu() for g in grads], dim=1))
    return torch.cat(out)


def finite_difference_gradients(
    model: TransformerBridge,
    batch: PairBatch,
    objective: str,
    metric: str,
    sources: Sources,
    eps: float = 1e-2,
    base: Float[torch.Tensor, "layer head"] | None = None,
) -> Grads:
    """Reference without autograd: the five-point central difference
    ``(-L(ξ+2ε) + 8 L(ξ+ε) - 8 L(ξ-ε) + L(ξ-2ε)) / 12ε`` per prompt and head (error O(ε⁴),
    so ε can be large enough that the metric's float32 rounding stays negligible)."""
    gate = _base(model, base)
    layers, heads = gate.shape
    n, dtype = batch.n_pairs, getattr(model.cfg, "dtype", None) or torch.float32
    out = torch.zeros(n, layers, heads, dtype=torch.float64)
    for layer in range(layers):
        for head in range(heads):
            total = torch.zeros(n, dtype=torch.float64)
            for step, weight in STENCIL:
                moved = gate.clone().to(dtype)
                moved[layer, head] += step * eps
                gates = {i: moved[i].expand(n, -1).to(batch.clean.device) for i in range(layers)}
                with torch.no_grad(), model.hooks(fwd_hooks=gate_hooks(gates, sources)):
                    logits = model(batch.clean)
                total += weight * objective_of(objective, logits, batch, metric).double().cpu()
            out[:, layer, head] = total / (12 * eps)
    return out


def importance(grads: Grads) -> Float[torch.Tensor, "layer head"]:
    """Mean over prompts of the absolute sensitivity."""
    return grads.abs().mean(0)


def normalise_per_layer(scores: Float[torch.Tensor, "layer head"]) -> torch.Tensor:
    """Each layer's scores divided by their ℓ2 norm (a layer of zeros stays zero)."""
    norm = scores.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, scores / norm.clamp(min=torch.finfo(scores.dtype).tiny), scores)
