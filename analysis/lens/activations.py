"""One cached pass over a set of sequences: what every lens of ``analysis.lens`` reads.

Sequences come right-padded with a mask of real positions (``FixedTokens`` of
``analysis.sae.activations``: a prompt set's clean prompts or a text file's windows). Every
per-position tensor keeps the real positions only, flattened in sequence order, so row ``i`` of
each is one (sequence, position):

- ``z``: each head's ``hook_z`` ``[n, layer, head, d_head]`` (its output is ``z @ W_O``);
- ``ov_z``: the same attention applied to values read from the token embeddings alone,
  ``Σ_k A[q, k] · centre(W_E[token_k]) @ W_V`` (unscaled: the OV lens divides by the layer's
  mean ``ln1`` scale), so ``ov_z / ln1_scale @ W_O`` is the head's output had the residual
  stream at every key held only its token;
- ``final_scale``: ``ln_final``'s cached scale at each position (``apply_ln_to_stack``);
- ``log_probs``: the model's own next-token log-probabilities;
- ``ln1_scale`` and ``final_scale_mean``: the mean norm scales over all real positions, the
  constants of the OV lens (the ``ln1`` scale is recomputed from ``resid_pre`` with the model's
  ``eps``, which is what ``ln1`` computes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Bool, Float, Int

from analysis.heads import _expanded_ov
from analysis.hooks import HookSite

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

BATCH = 8  # sequences per cached forward


class LensInputError(ValueError):
    """The sequences cannot be read by the lenses (NaN/inf, no positions)."""


@dataclass(frozen=True)
class LensActivations:
    z: Float[torch.Tensor, "n layer head d_head"]
    ov_z: Float[torch.Tensor, "n layer head d_head"]
    final_scale: Float[torch.Tensor, " n"]
    log_probs: Float[torch.Tensor, "n d_vocab"]
    ln1_scale: Float[torch.Tensor, " layer"]
    final_scale_mean: float
    lengths: list[int]
    tokens: list[list[int]]

    @property
    def n(self) -> int:
        return int(self.z.shape[0])

    def rows_of(self, sequence: int) -> slice:
        """The rows of one sequence."""
        start = sum(self.lengths[:sequence])
        return slice(start, start + self.lengths[sequence])

    def subset(self, sequences: list[int]) -> LensActivations:
        """The activations of some sequences only (the mean scales stay those of all)."""
        idx = torch.cat([torch.arange(self.rows_of(i).start, self.rows_of(i).stop)
                         for i in sequences])  # fmt: skip
        return LensActivations(
            z=self.z[idx], ov_z=self.ov_z[idx], final_scale=self.final_scale[idx],
            log_probs=self.log_probs[idx], ln1_scale=self.ln1_scale,
            final_scale_mean=self.final_scale_mean,
            lengths=[self.lengths[i] for i in sequences],
            tokens=[self.tokens[i] for i in sequences],
        )  # fmt: skip


def is_layernorm(model: TransformerBridge) -> bool:
    return getattr(model.cfg, "normalization_type", None) in ("LN", "LNPre")


def norm_scale(model: TransformerBridge, x: torch.Tensor) -> torch.Tensor:
    """The scale a (folded) LayerNorm / RMSNorm divides ``x`` by, ``[..., 1]``."""
    if is_layernorm(model):
        x = x - x.mean(-1, keepdim=True)
    return (x.pow(2).mean(-1, keepdim=True) + float(model.cfg.eps)).sqrt()


def centred_embedding(model: TransformerBridge) -> Float[torch.Tensor, "d_vocab d_model"]:
    w_e = model.W_E.detach().float()
    return w_e - w_e.mean(-1, keepdim=True) if is_layernorm(model) else w_e


def _sites(n_layers: int) -> list[str]:
    kinds = ("z", "pattern", "resid_pre")
    return [HookSite(k, layer).name for layer in range(n_layers) for k in kinds] + [  # type: ignore[arg-type]
        HookSite("ln_final_scale").name
    ]


def _token_z(
    cache, layer: int, embed: Float[torch.Tensor, "batch key d_model"], w_v: torch.Tensor
) -> Float[torch.Tensor, "batch query head d_head"]:
    """The layer's attention applied to values read from the token embeddings alone."""
    pattern = cache[HookSite("pattern", layer).name].float()  # [batch, head, query, key]
    values = torch.einsum("bkm,hmd->bhkd", embed.to(pattern.device), w_v.to(pattern.device))
    return torch.einsum("bhqk,bhkd->bqhd", pattern, values)


@torch.no_grad()
def collect(
    model: TransformerBridge,
    tokens: Int[torch.Tensor, "seq pos"],
    mask: Bool[torch.Tensor, "seq pos"],
) -> LensActivations:
    """The lens inputs of every real position of ``tokens`` (right-padded, ``mask`` real)."""
    n_layers = int(model.cfg.n_layers)
    names = set(_sites(n_layers))
    w_v, _ = _expanded_ov(model)  # [layer, head, d_model, d_head]
    w_e = centred_embedding(model)
    zs, ov_zs, scales, log_probs = [], [], [], []
    scale_sum, count = torch.zeros(n_layers), 0
    device = model.cfg.device
    for start in range(0, tokens.shape[0], BATCH):
        tok, real = tokens[start : start + BATCH], mask[start : start + BATCH]
        logits, cache = model.run_with_cache(tok.to(device), names_filter=lambda n: n in names)
        real = real.to(logits.device)
        z = torch.stack([cache[HookSite("z", i).name] for i in range(n_layers)], 2).float()
        embed = w_e[tok.to(w_e.device)]  # [batch, key, d_model]
        ov_z = torch.stack([_token_z(cache, i, embed, w_v[i]) for i in range(n_layers)], 2)
        for layer in range(n_layers):
            resid = cache[HookSite("resid_pre", layer).name].float()
            scale_sum[layer] += norm_scale(model, resid)[..., 0][real].sum().cpu()
        count += int(real.sum())
        zs.append(z[real].cpu())
        ov_zs.append(ov_z[real].cpu())
        scales.append(cache[HookSite("ln_final_scale").name][..., 0][real].float().cpu())
        log_probs.append(logits.float().log_softmax(-1)[real].cpu())
    out = LensActivations(
        z=torch.cat(zs),
        ov_z=torch.cat(ov_zs),
        final_scale=torch.cat(scales),
        log_probs=torch.cat(log_probs),
        ln1_scale=scale_sum / max(count, 1),
        final_scale_mean=float(torch.cat(scales).mean()) if count else 1.0,
        lengths=[int(n) for n in mask.sum(-1).tolist()],
        tokens=[row[m].tolist() for row, m in zip(tokens, mask, strict=True)],
    )
    if count == 0:
        raise LensInputError("no real positions to read the lenses at")
    finite = [torch.isfinite(t).all() for t in (out.z, out.ov_z, out.final_scale, out.log_probs)]
    if not all(finite):
        raise LensInputError("NaN or inf in the activations; check the model's weights/dtype")
    return out
