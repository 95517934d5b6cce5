"""The weightless pre-norm of a model whose layer norms are folded into the next weights.

``TransformerBridge.enable_compatibility_mode()`` folds each layer norm's scale and bias into the
weights that read it (as TransformerLens' ``fold_ln``), leaving ``LNPre``: centre and scale for
LayerNorm, scale only for RMSNorm. Code that recomputes a block from its weights (the patching
suffix kernel, circuit edge interventions) applies this function where the model applies its norm.
"""

from __future__ import annotations

import torch
from jaxtyping import Float


def folded_norm(
    x: Float[torch.Tensor, "... d_model"], norm_type: str | None, eps: float
) -> Float[torch.Tensor, "... d_model"]:
    """LN/LNPre: centre, then divide by the RMS; RMS/RMSPre: divide by the RMS; None: x."""
    if norm_type is None:
        return x
    if norm_type in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
