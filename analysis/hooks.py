"""Hook sites: every TransformerLens hook name headlab uses is built here, nowhere else.

A ``HookSite`` is a typed (kind, layer) pair whose ``name`` is the legacy TransformerLens hook
name that the TransformerBridge exposes as an alias in compatibility mode (e.g.
``blocks.3.attn.hook_z``). Shapes, as the hooks see them:

- ``z``, ``q``: [batch, pos, head, d_head]; ``k``, ``v``: [batch, pos, kv_head, d_head]
  (with grouped-query attention there are ``n_key_value_heads`` K/V heads, so per-head K/V
  results are per KV head);
- ``pattern``, ``attn_scores``: [batch, head, query_pos, key_pos];
- residual and component outputs (``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``,
  ``mlp_out``, ``embed``, ``pos_embed``): [batch, pos, d_model].
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

SiteKind = Literal[
    "z", "q", "k", "v", "pattern", "attn_scores", "result",
    "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out",
    "embed", "pos_embed", "ln_final_scale", "ln_final_out", "ln_final_in", "mlp_in", "ln1_in",
    "ln1_post_scale",
]  # fmt: skip

_ATTN_KINDS = frozenset({"z", "q", "k", "v", "pattern", "attn_scores", "result"})
_BLOCK_KINDS = frozenset({"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"})
# The MLP's own input (after ln2): changing it changes the MLP only, never the residual stream
# (unlike the bridge's ``hook_mlp_in``, whose edits leak into ``resid_mid``).
_MLP_KINDS = frozenset({"mlp_in"})
# The attention's pre-norm input: changing it changes what q, k and v are computed from (and a
# GPT-J block's MLP input, which reads the same norm), never the residual stream (measured on
# TL-native, GPT-2, Llama, GPT-NeoX and GPT-J bridges).
_LN1_KINDS = frozenset({"ln1_in"})
# The RMS that a post-attention norm (Gemma-2's ``post_attention_layernorm``, the bridge's
# ``ln1_post``) divides the attention output by: [batch, pos, 1].
_POST_NORM_KINDS = frozenset({"ln1_post_scale"})
_GLOBAL_NAMES = {
    "embed": "hook_embed",
    "pos_embed": "hook_pos_embed",
    "ln_final_scale": "ln_final.hook_scale",
    "ln_final_out": "ln_final.hook_out",
    "ln_final_in": "ln_final.hook_in",
}
# Sites whose head axis holds key/value heads (fewer than query heads under GQA).
KV_KINDS = frozenset({"k", "v"})
# Sites laid out [batch, head, query_pos, key_pos] rather than [batch, pos, head, ...].
PATTERN_KINDS = frozenset({"pattern", "attn_scores"})


class MissingHook(KeyError):
    """The model has no hook of this name; the message names the hook and the model."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class HookSite:
    kind: SiteKind
    layer: int | None = None

    def __post_init__(self) -> None:
        needs_layer = (
            self.kind in _ATTN_KINDS | _BLOCK_KINDS | _MLP_KINDS | _LN1_KINDS | _POST_NORM_KINDS
        )
        if needs_layer and self.layer is None:
            raise ValueError(f"hook site {self.kind!r} needs a layer")
        if not needs_layer and self.kind not in _GLOBAL_NAMES:
            raise ValueError(f"unknown hook site kind {self.kind!r}")

    @property
    def name(self) -> str:
        if self.kind in _ATTN_KINDS:
            return f"blocks.{self.layer}.attn.hook_{self.kind}"
        if self.kind in _BLOCK_KINDS:
            return f"blocks.{self.layer}.hook_{self.kind}"
        if self.kind in _MLP_KINDS:
            return f"blocks.{self.layer}.mlp.hook_in"
        if self.kind in _LN1_KINDS:
            return f"blocks.{self.layer}.ln1.hook_in"
        if self.kind in _POST_NORM_KINDS:
            return f"blocks.{self.layer}.ln1_post.hook_scale"
        return _GLOBAL_NAMES[self.kind]

    @property
    def is_kv(self) -> bool:
        return self.kind in KV_KINDS

    @property
    def is_pattern(self) -> bool:
        return self.kind in PATTERN_KINDS


def z(layer: int) -> HookSite:
    return HookSite("z", layer)


def pattern(layer: int) -> HookSite:
    return HookSite("pattern", layer)


def resid_pre(layer: int) -> HookSite:
    return HookSite("resid_pre", layer)


def site(kind: str, layer: int | None = None) -> HookSite:
    return HookSite(kind, layer)  # type: ignore[arg-type]


# z's name in compatibility mode (blocks.L.attn.hook_z) or the bridge's canonical one
# (blocks.L.attn.o.hook_in), as SAE configs name the hook they read
_Z_NAME = re.compile(r"^blocks\.(\d+)\.attn\.(?:hook_z|o\.hook_in)$")


def hook_z_layer(hook_name: str | None) -> int | None:
    """The layer of a ``z`` hook name, or None when it names another site."""
    match = _Z_NAME.match(hook_name or "")
    return int(match.group(1)) if match else None


def hook_names(model: TransformerBridge) -> set[str]:
    """Every hook name the model accepts (canonical names and legacy aliases)."""
    names = set(getattr(model, "hook_dict", {}).keys())
    names |= set(getattr(model, "hook_aliases", {}) or {})
    return names


def require_hooks(model: TransformerBridge, sites: Iterable[HookSite]) -> None:
    """Raise ``MissingHook`` naming every site the model lacks."""
    names = hook_names(model)
    missing = sorted({s.name for s in sites if s.name not in names})
    if missing:
        arch = getattr(model.cfg, "architecture", None) or type(model).__name__
        raise MissingHook(
            f"the model ({arch}) has no hook {', '.join(missing)}; this analysis needs it "
            "(an attention-only model has no MLP or resid_mid hooks; call "
            "enable_compatibility_mode() on a TransformerBridge for the legacy names)"
        )


def n_heads_at(model: TransformerBridge, kind: str) -> int:
    """Heads on a site's head axis: key/value heads for k and v under GQA, else query heads."""
    kv = getattr(model.cfg, "n_key_value_heads", None)
    if kind in KV_KINDS and kv:
        return int(kv)
    return int(model.cfg.n_heads)


class IneffectiveHook(ValueError):
    """Editing this hook does not change the model's output (an observation-only hook)."""


def require_effective_hook(model: TransformerBridge, site: HookSite, tokens: Any) -> None:
    """Raise ``IneffectiveHook`` if zeroing ``site`` leaves the logits unchanged.

    Some bridge architectures compute attention in fused code and only *report* the pattern
    to ``hook_pattern``; patching such a hook would silently measure nothing.
    """
    import torch

    require_hooks(model, [site])
    with torch.no_grad():
        plain = model(tokens)
        edited = model.run_with_hooks(
            tokens, fwd_hooks=[(site.name, lambda act, hook: torch.zeros_like(act))]
        )
    if torch.equal(plain, edited):
        arch = getattr(model.cfg, "architecture", None) or type(model).__name__
        raise IneffectiveHook(
            f"editing {site.name} does not change the output of this model ({arch}): the hook "
            "only observes the value, so patching it would measure nothing; patch z, q, k or v "
            "instead"
        )
