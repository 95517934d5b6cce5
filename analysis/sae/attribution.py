"""Attributing attention-output SAE features to heads and to source tokens.

Conventions (d_in = n_heads * d_head, head h owns columns ``h*d_head : (h+1)*d_head`` of hook_z):

- **Decoder-norm share** of head h in feature f: ``‖W_dec[f, h]‖² / ‖W_dec[f]‖²`` (Kissane et al.).
  Shares of a feature sum to 1. The feature's *dominant head* is the argmax; ``n_heads_50`` is the
  fewest heads whose shares add up to at least one half.
- **Features dominated** by head h: live features (frequency > 0) whose share in h is at least
  ``dominance`` (default 0.5, so at most one head dominates a feature).
- **Polysemanticity** of head h: the effective number of live features writing into the head's
  slice, ``exp(entropy(w))`` with ``w_f ∝ mean_act_f · ‖W_dec[f, h]‖`` (the feature's expected
  contribution norm to that slice). 1 means one feature carries the head; larger means more.
- **Direct feature attribution (DFA)** by source position. For the SAEs here the pre-activation is
  affine in the input: ``pre_f = s_f (x - a·b_dec) · W_enc[:, f] + s_f b_enc[f]`` where ``a`` is
  ``apply_b_dec_to_input`` and ``s_f`` is ‖W_dec[f]‖ for TopK SAEs that rescale by decoder norm,
  else 1. With ``z[dst, h] = Σ_src pattern[h, dst, src] · v[src, h]``,
  ``DFA[h, src] = s_f · pattern[h, dst, src] · (v[src, h] · W_enc[h-slice, f])`` and
  ``Σ_{h,src} DFA = pre_f - s_f (b_enc[f] - a·b_dec · W_enc[:, f])`` exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from sae_lens.saes.sae import SAE

from analysis import hooks

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

LINEAR_ARCHITECTURES = ("standard", "topk", "jumprelu", "batchtopk")


def head_shares(sae: SAE[Any], n_heads: int) -> Float[torch.Tensor, "d_sae n_heads"]:
    """Share of each feature's squared decoder norm in each head's slice (rows sum to 1)."""
    w = sae.W_dec.detach().double()
    per_head = w.reshape(w.shape[0], n_heads, -1).pow(2).sum(-1)
    return (per_head / per_head.sum(-1, keepdim=True).clamp_min(1e-30)).float()


def heads_to_half(shares: Float[torch.Tensor, "d_sae n_heads"]) -> Int[torch.Tensor, " d_sae"]:
    """Fewest heads whose (largest) shares add up to at least 0.5, per feature."""
    cumulative = shares.sort(dim=-1, descending=True).values.cumsum(-1)
    return (cumulative < 0.5 - 1e-6).sum(-1) + 1


def feature_table(
    shares: torch.Tensor,
    frequency: torch.Tensor,
    mean_act: torch.Tensor,
    max_act: torch.Tensor,
    layer: int,
    feature_offset: int = 0,
) -> pd.DataFrame:
    """``sae_features.parquet`` rows of one layer's SAE."""
    top_share, top_head = shares.max(-1)
    d_sae = shares.shape[0]
    return pd.DataFrame(
        {
            "feature": np.arange(d_sae) + feature_offset,
            "layer": layer,
            "sae_feature": np.arange(d_sae),
            "frequency": frequency.numpy().astype(float),
            "mean_act": mean_act.numpy().astype(float),
            "max_act": max_act.numpy().astype(float),
            "dominant_head": [f"{layer}.{int(h)}" for h in top_head],
            "dominant_share": top_share.numpy().astype(float),
            "n_heads_50": heads_to_half(shares).numpy().astype(int),
        }
    )


def share_table(shares: torch.Tensor, layer: int, feature_offset: int = 0) -> pd.DataFrame:
    """``sae_head_shares.parquet`` rows (feature, layer, head, share) of one layer's SAE."""
    d_sae, n_heads = shares.shape
    return pd.DataFrame(
        {
            "feature": np.repeat(np.arange(d_sae) + feature_offset, n_heads),
            "layer": layer,
            "head": np.tile(np.arange(n_heads), d_sae),
            "share": shares.reshape(-1).numpy().astype(float),
        }
    )


def head_summary(
    sae: SAE[Any],
    n_heads: int,
    frequency: Float[torch.Tensor, " d_sae"],
    mean_act: Float[torch.Tensor, " d_sae"],
    dominance: float = 0.5,
) -> dict[str, Float[torch.Tensor, " n_heads"]]:
    """Per head: ``features_dominated`` and ``polysemanticity`` (see module docstring)."""
    shares = head_shares(sae, n_heads)
    alive = frequency > 0
    dominated = ((shares >= dominance) & alive[:, None]).sum(0).float()
    w_dec = sae.W_dec.detach().double().reshape(sae.cfg.d_sae, n_heads, -1)
    weight = mean_act.double()[:, None] * w_dec.norm(dim=-1) * alive[:, None]
    p = weight / weight.sum(0, keepdim=True).clamp_min(1e-30)
    entropy = -(p * p.clamp_min(1e-30).log()).sum(0)
    poly = torch.where(weight.sum(0) > 0, entropy.exp(), torch.zeros_like(entropy))
    return {"features_dominated": dominated, "polysemanticity": poly.float()}


def linear_encoder(sae: SAE[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(W [d_in, d_sae], c [d_sae]) with ``pre = x @ W + c``, the SAE's affine pre-activation."""
    arch = sae.cfg.architecture()
    if arch not in LINEAR_ARCHITECTURES or sae.cfg.normalize_activations != "none":
        raise ValueError(
            f"direct feature attribution needs an affine encoder (architectures "
            f"{LINEAR_ARCHITECTURES}, no run-time normalisation); this SAE is {arch!r} with "
            f"normalize_activations={sae.cfg.normalize_activations!r}"
        )
    w_enc, b_enc = sae.W_enc.detach(), sae.b_enc.detach()
    scale = torch.ones(sae.cfg.d_sae, dtype=w_enc.dtype, device=w_enc.device)
    if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
        scale = sae.W_dec.detach().norm(dim=-1)
    w = w_enc * scale
    shift = sae.b_dec.detach() * float(sae.cfg.apply_b_dec_to_input)
    return w, (b_enc - shift @ w_enc) * scale


@torch.no_grad()
def feature_pre_activation(
    sae: SAE[Any], x: Float[torch.Tensor, "n d_in"]
) -> Float[torch.Tensor, "n d_sae"]:
    """The affine pre-activation ``x @ W + c`` (what ReLU / TopK / JumpReLU act on)."""
    w, c = linear_encoder(sae)
    return x.to(w.dtype) @ w + c


@torch.no_grad()
def direct_feature_attribution(
    model: TransformerBridge,
    sae: SAE[Any],
    layer: int,
    tokens: Int[torch.Tensor, "batch pos"],
    dst: Int[torch.Tensor, " batch"],
    features: Int[torch.Tensor, " batch"],
) -> Float[torch.Tensor, "batch n_heads src"]:
    """DFA of ``features[i]`` at position ``dst[i]`` of sequence i, by head and source position."""
    names = [hooks.site("v", layer).name, hooks.pattern(layer).name]
    device = next(model.parameters()).device
    _, cache = model.run_with_cache(
        tokens.to(device), names_filter=lambda n: n in names, stop_at_layer=layer + 1
    )
    v, pattern = cache[names[0]], cache[names[1]]  # [b src kv_head d_head], [b head dst src]
    n_heads = pattern.shape[1]
    if v.shape[2] != n_heads:  # grouped-query attention: each KV head serves several heads
        v = v.repeat_interleave(n_heads // v.shape[2], dim=2)
    w, _ = linear_encoder(sae)
    rows = torch.arange(tokens.shape[0], device=device)
    w_f = w[:, features.to(device)].T.reshape(len(features), n_heads, -1)  # [b head d_head]
    v_dot = torch.einsum("bshd,bhd->bhs", v.to(w.dtype), w_f)
    return pattern[rows, :, dst.to(device), :].to(w.dtype) * v_dot
