"""The head logit lens: a head's output at each position decoded into next-token logits.

The head's output at position q is ``z[q, h] @ W_O[h]`` (no ``b_O``: it belongs to no head),
as ``analysis.dla`` and TransformerLens' ``ActivationCache.stack_head_results`` form it. It is
decoded through the final norm with the scale cached at q (``apply_ln_to_stack``: centring for
LayerNorm, then the division) and ``W_U`` (no ``b_U``): the logits are the head's direct logit
attribution to every token at that position, so its logit difference at a prompt's last
position is the head's DLA. The lens' distribution is the softmax of those logits; its quality
is KL(model ‖ lens) averaged over every real position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float

from analysis.heads import _expanded_ov
from analysis.lens.activations import LensActivations
from analysis.lens.decode import HeadScan, cached_norm, scan_heads

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


def head_outputs(
    model: TransformerBridge, act: LensActivations, layer: int, rows: slice
) -> Float[torch.Tensor, "head rows d_model"]:
    """Every head of ``layer``'s output ``z @ W_O`` at the given rows, on the model's device."""
    _, w_o = _expanded_ov(model)
    return torch.einsum("nhd,hdm->hnm", act.z[rows, layer].to(w_o.device), w_o[layer])


def logit_lens_logits(
    model: TransformerBridge, act: LensActivations, layer: int, rows: slice
) -> Float[torch.Tensor, "head rows d_vocab"]:
    """The head logit lens of every head of ``layer`` at the given rows."""
    return _decode(model, act)(head_outputs(model, act, layer, rows), rows)


def _decode(model: TransformerBridge, act: LensActivations):
    w_u = model.W_U.detach().float()

    def decoder(x: torch.Tensor, rows: slice) -> torch.Tensor:
        scale = act.final_scale[rows].to(x.device)[None, :, None]
        return cached_norm(model, x, scale) @ w_u

    return decoder


def logit_lens(model: TransformerBridge, act: LensActivations, k: int | None) -> HeadScan:
    """KL to the model per head and (``k`` given) the top-k tokens at every position."""
    return scan_heads(
        model, act.log_probs, lambda layer, rows: head_outputs(model, act, layer, rows),
        _decode(model, act), k,
    )  # fmt: skip
