"""Rotary position embeddings (RoPE) as HF models apply them, from the model's own tables.

A rotary model rotates each query and key by an angle that grows with its position; the
TransformerBridge's ``hook_q``/``hook_k`` hold them *before* the rotation. HF models (Llama,
Mistral, Qwen, ...) compute the tables once per forward and pass ``position_embeddings=(cos,
sin)``, each ``[batch | 1, pos, rotary_dim]``, as a keyword argument to every block; the
rotation (the "rotate half" convention, non-interleaved) is

    rotate(x) = x * cos + rotate_half(x) * sin,   rotate_half(x) = cat(-x[..., h:], x[..., :h])

with h = rotary_dim / 2, applied to the first ``rotary_dim`` dimensions of each head only
(partial rotary); the rest pass through. ``record_position_embeddings`` captures the tables
during a forward with a pre-hook on the first block; ``apply_rotary`` applies them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

RotaryTables = tuple[torch.Tensor, torch.Tensor]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rotary(
    x: Float[torch.Tensor, "batch pos *heads d_head"],
    tables: RotaryTables,
    positions: Int[torch.Tensor, "batch pos"] | None = None,
) -> Float[torch.Tensor, "batch pos *heads d_head"]:
    """``x`` rotated at ``positions`` (default 0..pos-1 for every row); ``tables`` = (cos, sin)
    ``[1 | n, >= pos, rotary_dim]`` broadcast over the dimensions between pos and d_head. Tables
    of n prompts serve ``x`` holding several stacked copies of them (rows = copies * n)."""
    cos, sin = tables
    if cos.shape[0] not in (1, x.shape[0]):  # stacked copies of the prompts the tables are for
        copies = x.shape[0] // cos.shape[0]
        cos, sin = cos.repeat(copies, 1, 1), sin.repeat(copies, 1, 1)
    if positions is None:
        cos, sin = cos[:, : x.shape[1]], sin[:, : x.shape[1]]
    else:
        rows = torch.arange(x.shape[0], device=x.device)[:, None] if cos.shape[0] > 1 else 0
        cos, sin = cos[rows, positions], sin[rows, positions]
    shape = (cos.shape[0], x.shape[1]) + (1,) * (x.dim() - 3) + (cos.shape[-1],)
    cos, sin = cos.reshape(shape).to(x.dtype), sin.reshape(shape).to(x.dtype)
    dim = cos.shape[-1]
    rot, rest = x[..., :dim], x[..., dim:]
    return torch.cat([rot * cos + rotate_half(rot) * sin, rest], dim=-1)


@contextmanager
def record_position_embeddings(model: TransformerBridge | None) -> Iterator[list[RotaryTables]]:
    """Inside the block, forwards of ``model`` append the (cos, sin) their first block was
    given to the yielded list (nothing for models without rotary tables, or for None)."""
    seen: list[RotaryTables] = []
    blocks = getattr(model, "blocks", None)
    if blocks is None or len(blocks) == 0:
        yield seen
        return

    def pre(module: Any, args: tuple, kwargs: dict) -> None:
        emb = kwargs.get("position_embeddings")
        if isinstance(emb, tuple) and len(emb) == 2 and all(torch.is_tensor(t) for t in emb):
            seen.append((emb[0].detach(), emb[1].detach()))

    handle = blocks[0].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()
