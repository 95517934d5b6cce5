"""Decoding a vector in the residual stream into next-token logits, two ways.

- ``cached_norm``: centre (LayerNorm only) and divide by a given scale — the final norm as
  TransformerLens' ``ActivationCache.apply_ln_to_stack`` applies it to one component with the
  scale cached at that position (``analysis.dla`` does the same for DLA). Linear in the vector,
  so the logits are the component's direct logit attribution to every token. No ``b_U``.
- ``fresh_norm``: the final norm applied to the vector itself (its own scale), then ``W_U`` and
  ``b_U`` — the model's ``unembed(ln_final(x))`` on a residual stream holding only ``x``, the
  decoder of the trained lens (as a tuned lens decodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int

from analysis.dla import _ln_final_stack
from analysis.lens.activations import is_layernorm, norm_scale

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

# logits held at once (rows × vocab): bounds every chunked decode to ~256 MB of float32
MAX_LOGITS = 1 << 26


def cached_norm(
    model: TransformerBridge, x: Float[torch.Tensor, "... d_model"], scale: torch.Tensor | float
) -> Float[torch.Tensor, "... d_model"]:
    """``x`` through the final norm with a given scale (``[..., 1]`` or a number)."""
    return _ln_final_stack(model, x, torch.as_tensor(scale, device=x.device))


def fresh_norm_logits(
    model: TransformerBridge, x: Float[torch.Tensor, "... d_model"]
) -> Float[torch.Tensor, "... d_vocab"]:
    """``unembed(ln_final(x))`` with the norm's own scale, written out so gradients reach only
    ``x`` (the model's parameters stay frozen)."""
    if is_layernorm(model):
        x = x - x.mean(-1, keepdim=True)
    normed = x / norm_scale(model, x)
    return normed @ model.W_U.detach().float() + model.b_U.detach().float()


def kl_to_model(
    log_p: Float[torch.Tensor, "n d_vocab"], logits: Float[torch.Tensor, "n d_vocab"]
) -> Float[torch.Tensor, " n"]:
    """KL(model ‖ lens) per row (last axis: vocabulary; leading axes broadcast)."""
    return (log_p.exp() * (log_p - logits.log_softmax(-1))).sum(-1)


def rows_per_chunk(d_vocab: int, heads: int = 1) -> int:
    """Rows a chunk may decode for ``heads`` heads at once within ``MAX_LOGITS``."""
    return max(1, MAX_LOGITS // max(1, d_vocab * heads))


def top_k(
    logits: Float[torch.Tensor, "... d_vocab"], k: int, largest: bool = True
) -> tuple[Int[torch.Tensor, "... k"], Float[torch.Tensor, "... k"]]:
    """The ``k`` largest (or smallest) logits and their token ids, in order."""
    k = min(k, logits.shape[-1])
    values, ids = torch.topk(logits, k, dim=-1, largest=largest, sorted=True)
    return ids.to(torch.int32), values


@dataclass(frozen=True)
class HeadScan:
    """A lens read at every position for every head: its mean KL to the model and (when
    asked) its top-k tokens per position."""

    kl: Float[torch.Tensor, "layer head"]
    ids: Int[torch.Tensor, "n layer head k"] | None
    probs: Float[torch.Tensor, "n layer head k"] | None
    logits: Float[torch.Tensor, "n layer head k"] | None


# head outputs of a layer at some rows: (layer, rows) -> [head, rows, d_model] on the device
Outputs = Callable[[int, slice], torch.Tensor]
# [head, rows, d_model] -> [head, rows, d_vocab] logits, given the rows
Decoder = Callable[[torch.Tensor, slice], torch.Tensor]


@torch.no_grad()
def scan_heads(
    model: TransformerBridge, log_probs: Float[torch.Tensor, "n d_vocab"],
    outputs: Outputs, decoder: Decoder, k: int | None = None,
) -> HeadScan:  # fmt: skip
    """Decode every head's outputs at every row in bounded chunks: mean KL(model ‖ lens) per
    head, and the top-``k`` tokens (id, probability, logit) of each row when ``k`` is given."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    n, vocab = log_probs.shape
    step = rows_per_chunk(vocab, n_heads)
    kl = torch.zeros(n_layers, n_heads)
    tops: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in range(n_layers)]
    device = model.W_U.device
    for layer in range(n_layers):
        for start in range(0, n, step):
            rows = slice(start, min(n, start + step))
            logits = decoder(outputs(layer, rows), rows)  # [head, rows, vocab]
            log_p = log_probs[rows].to(device)
            kl[layer] += kl_to_model(log_p[None], logits).sum(-1).cpu()
            if k is not None:
                ids, values = top_k(logits, k)
                probs = logits.log_softmax(-1).gather(-1, ids.long()).exp()
                tops[layer].append((ids.cpu(), probs.cpu(), values.cpu()))
    kl /= max(n, 1)
    if k is None:
        return HeadScan(kl, None, None, None)
    # [layer][chunk] of [head, rows, k] -> [n, layer, head, k]
    parts = [
        torch.stack([torch.cat([c[i] for c in chunks], 1) for chunks in tops]).permute(2, 0, 1, 3)
        for i in range(3)
    ]
    return HeadScan(kl, parts[0].contiguous(), parts[1].contiguous(), parts[2].contiguous())
