"""What activation patching patches: targets, their variants, and the vectorised patch hook.

A ``PatchTarget`` names a hook-site kind (``z``, ``q``, ``k``, ``v``, ``pattern``,
``resid_pre``) and whether patching is over all positions or per position. Its variants at one
layer follow ``transformer_lens.patching`` exactly:

- ``z/q/k/v`` all positions: one variant per head ``(head,)``; per position ``(pos, head)``.
  For ``k``/``v`` the heads are key/value heads (``n_key_value_heads`` under GQA).
- ``pattern`` all positions: ``(head,)``; per position ``(head, dest_pos)`` (query position).
- ``resid_pre``: per position only, ``(pos,)``.

A patch overwrites, in the *target* run, the selected slice of the activation with the same
slice of the *source* activation (denoising: target = corrupted, source = clean; noising: the
reverse). ``chunk_mask`` builds one boolean mask for several variants at once, so that ``c``
variants run as ``c`` stacked copies of the batch (rows ordered variant-major:
row ``i * batch + b`` is prompt ``b`` under variant ``i``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Bool, Float

from analysis.hooks import HookSite, n_heads_at

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

PatchKind = Literal["z", "q", "k", "v", "pattern", "resid_pre"]
PATCH_KINDS: tuple[str, ...] = ("z", "q", "k", "v", "pattern", "resid_pre")
Variant = tuple[int, ...]


@dataclass(frozen=True)
class PatchTarget:
    kind: PatchKind
    per_position: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PATCH_KINDS:
            raise ValueError(f"cannot patch {self.kind!r}; choose one of {', '.join(PATCH_KINDS)}")
        if self.kind == "resid_pre" and not self.per_position:
            raise ValueError("resid_pre is patched per position (per_position=True)")

    @property
    def metric_name(self) -> str:
        """Stored metric name, e.g. patch_z / patch_k_pos / patch_resid_pos."""
        base = "patch_resid" if self.kind == "resid_pre" else f"patch_{self.kind}"
        return f"{base}_pos" if self.per_position and self.kind != "resid_pre" else base

    def site(self, layer: int) -> HookSite:
        return HookSite(self.kind, layer)

    def n_heads(self, model: TransformerBridge) -> int:
        return 0 if self.kind == "resid_pre" else n_heads_at(model, self.kind)

    def variants(
        self, model: TransformerBridge, n_pos: int, positions: Sequence[int] | None = None
    ) -> list:
        """Variants at one layer, in TransformerLens' iteration order."""
        pos = list(range(n_pos)) if positions is None else list(positions)
        heads = range(self.n_heads(model))
        if self.kind == "resid_pre":
            return [(p,) for p in pos]
        if not self.per_position:
            return [(h,) for h in heads]
        if self.kind == "pattern":
            return [(h, p) for h in heads for p in pos]
        return [(p, h) for p in pos for h in heads]

    def head_and_position(self, variant: Variant) -> tuple[int | None, int | None]:
        if self.kind == "resid_pre":
            return None, variant[0]
        if not self.per_position:
            return variant[0], None
        if self.kind == "pattern":
            return variant[0], variant[1]
        return variant[1], variant[0]

    def chunk_mask(
        self, variants: Sequence[Variant], act_shape: Sequence[int], device: torch.device
    ) -> Bool[torch.Tensor, "copies ..."]:
        """Boolean mask [copies, *act_shape[1:-1], 1]: True where variant i patches."""
        inner = list(act_shape[1:-1])  # pos,head | head,q_pos | pos
        mask = torch.zeros([len(variants), *inner, 1], dtype=torch.bool, device=device)
        for i, variant in enumerate(variants):
            head, pos = self.head_and_position(variant)
            if self.kind == "resid_pre":
                mask[i, pos] = True
            elif self.kind == "pattern":
                mask[i, head, slice(None) if pos is None else pos] = True
            else:
                mask[i, slice(None) if pos is None else pos, head] = True
        return mask


def patch_hook(
    target: PatchTarget,
    variants: Sequence[Variant],
    source: Float[torch.Tensor, "batch ..."],
):
    """A forward hook that applies ``variants`` to ``copies * batch`` stacked rows."""
    n_batch = source.shape[0]

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        copies = act.shape[0] // n_batch
        if copies != len(variants):
            raise RuntimeError(f"{act.shape[0]} rows for {len(variants)} patch variants")
        mask = target.chunk_mask(variants, act.shape, act.device)
        mask = mask.repeat_interleave(n_batch, dim=0)
        src = source.to(act.dtype).repeat(copies, *([1] * (source.dim() - 1)))
        return torch.where(mask, src, act)

    return hook
