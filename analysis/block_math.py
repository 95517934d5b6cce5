"""Arithmetic of a transformer block recomputed from the model's weights.

Code that recomputes blocks outside the model's own forward (the patching suffix kernel, circuit
edge interventions, the QK fix) shares these pieces, so that each matches the model the same way:

- ``folded_norm``: ``TransformerBridge.enable_compatibility_mode()`` folds each layer norm's
  scale and bias into the weights that read it (as TransformerLens' ``fold_ln``), leaving
  ``LNPre``: centre and scale for LayerNorm, scale only for RMSNorm;
- ``attention_scale``: the divisor of ``q k^T`` (``cfg.attn_scale``, default ``sqrt(d_head)``;
  1 when ``use_attn_scale`` is off);
- ``model_param``: a stacked weight such as ``W_Q`` or ``b_O``, or None when the model has none.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


def folded_norm(
    x: Float[torch.Tensor, "... d_model"], norm_type: str | None, eps: float
) -> Float[torch.Tensor, "... d_model"]:
    """LN/LNPre: centre, then divide by the RMS; RMS/RMSPre: divide by the RMS; None: x."""
    if norm_type is None:
        return x
    if norm_type in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def attention_scale(cfg: Any) -> float:
    """What attention scores are divided by (TransformerLens' ``attn_scale``; <= 0: default)."""
    if not getattr(cfg, "use_attn_scale", True):
        return 1.0
    scale = float(getattr(cfg, "attn_scale", -1.0) or -1.0)
    return scale if scale > 0 else math.sqrt(float(cfg.d_head))


def model_param(model: TransformerBridge, name: str) -> torch.Tensor | None:
    """The model's stacked parameter ``name`` (e.g. ``W_Q``, ``b_O``), detached; None if absent."""
    try:
        value = getattr(model, name)
    except (TypeError, AttributeError):  # the bridge raises TypeError when a bias is absent
        return None
    return None if value is None else value.detach()
