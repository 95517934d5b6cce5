"""Head masks: a gate ξ on every head's output ``z``, the one edit importance and pruning make.

Head ``h`` of layer ``l`` outputs ``z'_h = s_h + ξ_h (z_h - s_h)`` at every position, where
``s`` is the ablation's replacement (``analysis.ablation.ablation_source``): ``zero`` gives
``z' = ξ z``, the mask of Michel et al. 2019; ``mean`` and ``resample`` interpolate towards the
set's mean ``z`` or another prompt's. ``ξ_h = 1`` is the model, ``ξ_h = 0`` removes the head.

Many masks run as stacked copies of the prompt batch, as patching's chunks do: row
``i * batch + b`` is prompt ``b`` under mask ``i``; a gate holds one value per row and head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from analysis.ablation import ablation_source
from analysis.hooks import HookSite, require_effective_hook
from analysis.prompt_batch import PairBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

# layer -> the replacement z [batch, pos, head, d_head]; None: zero ablation (z' = ξ z)
Sources = dict[int, torch.Tensor] | None
Masks = Float[torch.Tensor, "mask layer head"]
Gate = Float[torch.Tensor, "rows head"]


def mask_sources(model: TransformerBridge, batch: PairBatch, method: str) -> Sources:
    """The replacement of every layer's z on the clean prompts (None for zero ablation)."""
    if method == "zero":
        return None
    n_layers = int(model.cfg.n_layers)
    names = {HookSite("z", i).name: i for i in range(n_layers)}
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.clean, names_filter=lambda n: n in names)
    return {i: ablation_source(method, cache[n], batch) for n, i in names.items()}


def gate_hook(gate: Gate, source: torch.Tensor | None) -> Any:
    """A forward hook on ``z`` [rows, pos, head, d_head] that applies ``gate`` row by row."""

    def hook(z: torch.Tensor, hook: Any = None) -> torch.Tensor:
        if gate.shape[0] != z.shape[0]:
            raise RuntimeError(f"a gate of {gate.shape[0]} rows for {z.shape[0]} rows of z")
        g = gate.to(z.device, z.dtype)[:, None, :, None]
        if source is None:
            return z * g
        copies = z.shape[0] // source.shape[0]
        s = source.to(z.device, z.dtype).repeat(copies, 1, 1, 1)
        return s + g * (z - s)

    return hook


def gate_hooks(gates: dict[int, Gate], sources: Sources) -> list[tuple[str, Any]]:
    """One ``z`` hook per gated layer."""
    return [
        (HookSite("z", layer).name, gate_hook(g, None if sources is None else sources[layer]))
        for layer, g in gates.items()
    ]


def row_gates(masks: Masks, n_prompts: int) -> dict[int, Gate]:
    """Each mask's gates repeated over the prompts: layer -> [mask * prompt, head]."""
    return {
        layer: masks[:, layer, :].repeat_interleave(n_prompts, dim=0)
        for layer in range(masks.shape[1])
    }


def require_effective_mask(model: TransformerBridge, tokens: torch.Tensor) -> None:
    """Raise ``IneffectiveHook`` if editing any layer's z leaves the output unchanged."""
    for layer in range(int(model.cfg.n_layers)):
        require_effective_hook(model, HookSite("z", layer), tokens)
