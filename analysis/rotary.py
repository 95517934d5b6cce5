"""Rotary position embeddings (RoPE) as HF models apply them, from the model's own tables.

A rotary model rotates each query and key by an angle that grows with its position; the
TransformerBridge's ``hook_q``/``hook_k`` hold them *before* the rotation. HF models (Llama,
Mistral, Qwen, ...) compute the tables once per forward and pass ``position_embeddings=(cos,
sin)``, each ``[batch | 1, pos, rotary_dim]``, as a keyword argument to every block; the
rotation (the "rotate half" convention, non-interleaved) is

    rotate(x) = x * cos + rotate_half(x) * sin,   rotate_half(x) = cat(-x[..., h:], x[..., :h])

with h = rotary_dim / 2, applied to the first ``rotary_dim`` dimensions of each head only
(partial rotary); the rest pass through. TransformerLens-native models (``boot_native``, e.g.
``zoo:code-6l``) pass no tables to their blocks: their attention rotates q and k itself, from
the ``cos_cached``/``sin_cached`` buffers of a shared rotary module indexed by the
``position_ids`` the attention is called with, and rotates *adjacent pairs* (2i, 2i + 1)
("interleaved"; the tables repeat each angle twice in a row) instead of halves.
GPT-J (HF ``GPTJForCausalLM``) passes its blocks ``(sin, cos)`` — that order — of
``rotary_dim / 2`` angles each, and rotates adjacent pairs with each angle repeated twice
(``rotate_every_two``); ``block_tables`` turns such a pair into the full interleaved tables.
``record_position_embeddings`` captures the tables during a forward (a pre-hook on the first
block, or on the first native attention module, whose convention is read off its own
rotation); ``apply_rotary`` applies them in their convention.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


@dataclass(frozen=True)
class RotaryTables:
    """(cos, sin) ``[1 | n, pos, rotary_dim]`` and the pairing they rotate: halves (HF) or
    adjacent pairs (``interleaved``, TransformerLens-native)."""

    cos: torch.Tensor
    sin: torch.Tensor
    interleaved: bool = False


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """The interleaved convention's partner: (x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)."""
    return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)


def apply_rotary(
    x: Float[torch.Tensor, "batch pos *heads d_head"],
    tables: RotaryTables | tuple[torch.Tensor, torch.Tensor],
    positions: Int[torch.Tensor, "batch pos"] | None = None,
) -> Float[torch.Tensor, "batch pos *heads d_head"]:
    """``x`` rotated at ``positions`` (default 0..pos-1 for every row); ``tables`` = (cos, sin)
    ``[1 | n, >= pos, rotary_dim]`` broadcast over the dimensions between pos and d_head (a
    plain tuple rotates halves). Tables of n prompts serve ``x`` holding several stacked copies
    of them (rows = copies * n)."""
    if isinstance(tables, RotaryTables):
        cos, sin, partner = tables.cos, tables.sin, rotate_pairs if tables.interleaved else None
    else:
        (cos, sin), partner = tables, None
    partner = partner or rotate_half
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
    return torch.cat([rot * cos + partner(rot) * sin, rest], dim=-1)


# HF architectures whose blocks get ``position_embeddings = (sin, cos)`` of rotary_dim / 2 angles,
# applied to adjacent pairs (each angle repeated twice), as GPT-J's ``apply_rotary_pos_emb``.
SIN_COS_PAIR_ARCHITECTURES = frozenset({"GPTJForCausalLM"})


def block_tables(model: TransformerBridge, emb: tuple[torch.Tensor, torch.Tensor]) -> RotaryTables:
    """The rotary tables of the ``position_embeddings`` pair a block of ``model`` is given."""
    first, second = emb[0].detach(), emb[1].detach()
    if getattr(model.cfg, "architecture", None) in SIN_COS_PAIR_ARCHITECTURES:
        cos, sin = second.repeat_interleave(2, -1), first.repeat_interleave(2, -1)
        return RotaryTables(cos, sin, interleaved=True)
    return RotaryTables(first, second)


def _native_rotary_attention(model: TransformerBridge) -> tuple[Any, bool] | None:
    """The first attention module that rotates q/k itself from a rotary module's cached tables
    (TransformerLens-native), and whether that rotation is interleaved; None if there is none
    or its rotation is neither convention."""
    for module in model.modules():
        rotary: Any = dict(module.named_children()).get("rotary")
        if not all(hasattr(rotary, a) for a in ("cos_cached", "sin_cached", "_rotate_half")):
            continue
        probe = torch.arange(float(rotary.cos_cached.shape[-1]))
        partner = rotary._rotate_half(probe)
        for interleaved, rotate in ((True, rotate_pairs), (False, rotate_half)):
            if torch.equal(partner, rotate(probe)):
                return module, interleaved
        return None
    return None


def _native_tables(rotary: Any, args: tuple, kwargs: dict, interleaved: bool) -> RotaryTables:
    """The tables the native attention indexes for this call (as its ``apply_rope`` does)."""
    hidden: torch.Tensor = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
    ids = kwargs.get("position_ids")
    cos, sin = rotary.cos_cached.detach(), rotary.sin_cached.detach()
    if ids is None:
        seq = int(hidden.shape[1])
        return RotaryTables(cos[None, :seq], sin[None, :seq], interleaved)
    return RotaryTables(cos[ids], sin[ids], interleaved)


@contextmanager
def record_position_embeddings(model: TransformerBridge | None) -> Iterator[list[RotaryTables]]:
    """Inside the block, forwards of ``model`` append the rotary tables their first block was
    given, or their first native attention module used, to the yielded list (nothing for
    models without rotary tables, or for None)."""
    seen: list[RotaryTables] = []
    blocks = getattr(model, "blocks", None)
    if model is None or blocks is None or len(blocks) == 0:
        yield seen
        return

    def pre(module: Any, args: tuple, kwargs: dict) -> None:
        emb = kwargs.get("position_embeddings")
        if isinstance(emb, tuple) and len(emb) == 2 and all(torch.is_tensor(t) for t in emb):
            seen.append(block_tables(model, emb))

    handles = [blocks[0].register_forward_pre_hook(pre, with_kwargs=True)]
    native = _native_rotary_attention(model)
    if native is not None:
        attention, interleaved = native

        def native_pre(module: Any, args: tuple, kwargs: dict) -> None:
            seen.append(_native_tables(module.rotary, args, kwargs, interleaved))

        handles.append(attention.register_forward_pre_hook(native_pre, with_kwargs=True))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()
