"""Direct logit attribution (DLA) and the logit lens.

DLA splits the final residual stream at each prompt's last position into the components that
wrote it — token embedding (``embed``), positional embedding (``pos_embed``, where the model has
one), every head's output ``z[h] @ W_O[h]``, every MLP output and the biases (``biases``: every
layer's ``b_O`` plus the unembedding bias ``b_U``; MLP biases are inside ``mlp_out``) — and
projects each onto the logit-difference direction ``W_U[:, correct] - W_U[:, incorrect]`` after
the final norm, handled as TransformerLens' ``ActivationCache.apply_ln_to_stack`` does: centre
(LayerNorm only) and divide by the final norm's cached scale at that position. The components
sum to the logit difference. Requires the bridge's compatibility mode so that the weights are
TransformerLens-processed (final-norm weights folded into ``W_U``).

Post-attention / post-MLP norms (Gemma-2/3's ``post_attention_layernorm`` and
``post_feedforward_layernorm``, the bridge's ``ln1_post`` / ``ln2_post``): the attention block
writes ``g * (sum_h z[h] @ W_O[h] + b_O) / rms`` to the residual stream, ``g`` the norm's gain
(``1 + weight`` where the config has ``rmsnorm_uses_offset``) and ``rms`` its cached
``hook_scale``. That scale is frozen at this forward's value per position — the treatment the
final norm gets — so head ``h`` writes ``g * (z[h] @ W_O[h]) / rms`` and ``b_O``'s share
``g * b_O / rms`` goes to ``biases``; together they equal the block's real output
(``hook_attn_out``), which is checked. The MLP's post-norm output is one component, read as
``hook_mlp_out``. Only RMS post-norms are decomposed; any other is refused naming the norm.

Final-logit soft-capping (Gemma-2's ``final_logit_softcapping``: logits are
``cap * tanh(pre / cap)``): DLA is linear only before the cap, so it is computed in pre-cap
logit space — the components sum exactly to the pre-cap logit difference
``unembed(ln_final(resid))[correct] - ...[incorrect]``. The cap is monotonic per logit, so a
component raising the pre-cap difference raises the correct logit relative to the incorrect
one, but the capped difference is not the sum of the components.

The logit lens reads the residual stream entering each layer (and the final one) at the last
position through ``ln_final`` + ``unembed`` (a fresh norm per layer), applies the model's final
soft-cap when it has one, and reports the logit diff, so its last entry is the model's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from analysis.hooks import HookSite, hook_names, require_hooks
from analysis.metrics import metric_per_prompt
from analysis.prompt_batch import PairBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


@dataclass(frozen=True)
class DlaResult:
    heads: Float[torch.Tensor, "layer head batch"]
    mlps: Float[torch.Tensor, "layer batch"] | None
    embed: Float[torch.Tensor, " batch"]
    pos_embed: Float[torch.Tensor, " batch"] | None
    biases: Float[torch.Tensor, " batch"]
    logit_lens: Float[torch.Tensor, "layer_plus_one batch"]


def _at_last(act: torch.Tensor, batch: PairBatch) -> torch.Tensor:
    rows = torch.arange(act.shape[0], device=act.device)
    return act[rows, batch.last.to(act.device)]


def _ln_final_stack(
    model: TransformerBridge, stack: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """[components, batch, d_model] through the final norm as TransformerLens applies it."""
    if getattr(model.cfg, "normalization_type", None) in ("LN", "LNPre"):
        stack = stack - stack.mean(-1, keepdim=True)
    return stack / scale


def _b_O(model: TransformerBridge, layer: int) -> torch.Tensor | None:
    bias = getattr(model.blocks[layer].attn, "b_O", None)
    return bias if isinstance(bias, torch.Tensor) else None


def post_norm_gain(model: TransformerBridge, layer: int) -> torch.Tensor:
    """The per-dimension gain of block ``layer``'s post-attention RMS norm (``ln1_post``), as
    the bridge applies it: ``1 + weight`` under ``rmsnorm_uses_offset`` (Gemma), else
    ``weight``. ValueError naming the norm when it is not a bias-free RMS norm."""
    arch = getattr(model.cfg, "architecture", None) or "this model"
    norm = getattr(model.blocks[layer], "ln1_post", None)
    weight = getattr(norm, "weight", None)
    bias = getattr(getattr(norm, "original_component", None), "bias", None)
    if (
        not getattr(norm, "uses_rms_norm", False)
        or not isinstance(weight, torch.Tensor)
        or (isinstance(bias, torch.Tensor))
    ):
        raise ValueError(
            f"{arch}: direct logit attribution splits a post-attention norm's output over the "
            f"heads only for an RMS norm with a gain and no bias; blocks.{layer}'s ln1_post is "
            "not one (use a model without post-attention norms, or patching)"
        )
    return 1.0 + weight if getattr(model.cfg, "rmsnorm_uses_offset", False) else weight


Positions = Callable[[torch.Tensor], torch.Tensor]  # [batch, pos, ...] -> [batch, ...]


def _head_writes(
    model: TransformerBridge, cache: Any, at: Positions, post_norms: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every head's write to the residual stream at the positions ``at`` picks, [layer, head,
    batch, d_model], and the sum of the layers' b_O writes, [batch, d_model]: ``z[h] @ W_O[h]``
    and ``b_O``, or through a post-attention norm with its scale frozen, ``g * (.) / rms``."""
    n_layers = int(model.cfg.n_layers)
    z = torch.stack([at(cache[HookSite("z", i).name]) for i in range(n_layers)])
    heads = torch.einsum("lbhd,lhdm->lhbm", z, model.W_O)  # [layer, head, batch, d_model]
    bias = torch.zeros(heads.shape[2:], dtype=heads.dtype, device=heads.device)
    if not post_norms:
        for layer in range(n_layers):
            b_o = _b_O(model, layer)
            if b_o is not None:
                bias = bias + b_o.to(bias.device)
        return heads, bias
    require_hooks(model, [HookSite("ln1_post_scale", i) for i in range(n_layers)])
    out = []
    for layer in range(n_layers):
        gain = post_norm_gain(model, layer).float().to(heads.device)
        rms = at(cache[HookSite("ln1_post_scale", layer).name]).float()  # [b, 1]
        written = heads[layer].float() * gain / rms  # [head, batch, d_model]
        b_o = _b_O(model, layer)
        b_write = torch.zeros_like(written[0]) if b_o is None else gain * b_o.float() / rms
        real = at(cache[HookSite("attn_out", layer).name]).float()
        error = (written.sum(0) + b_write - real).abs().max()
        if not error <= max(1e-4, 16 * torch.finfo(heads.dtype).eps) * max(
            float(real.abs().max()), 1.0
        ):
            raise ValueError(
                f"{getattr(model.cfg, 'architecture', 'this model')}: the heads' writes through "
                f"blocks.{layer}'s post-attention norm (frozen scale) miss its output by "
                f"{float(error):.3g}; direct logit attribution cannot split this norm"
            )
        out.append(written.to(heads.dtype))
        bias = bias + b_write.to(bias.dtype)
    return torch.stack(out), bias


def component_writes(
    model: TransformerBridge, cache: Any, at: Positions
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every component's write to the final residual stream at the positions ``at`` picks, each
    [components, batch, d_model] — ``heads`` (layer-major, through post-attention norms as the
    module docstring says), ``mlps`` (when the model has MLPs), ``embed``, ``pos_embed`` (when
    it has one) and ``biases`` (the b_O writes; b_U acts in logit space, ``unembed_bias``) —
    and the final norm's cached scale there [batch, 1]."""
    from analysis.models import sandwich_norms

    n_layers = int(model.cfg.n_layers)
    names = hook_names(model)
    heads, bias = _head_writes(model, cache, at, sandwich_norms(model))
    parts = {"heads": heads.reshape(-1, *heads.shape[2:])}
    mlp_names = [HookSite("mlp_out", i).name for i in range(n_layers)]
    if all(n in names for n in mlp_names) and not getattr(model.cfg, "attn_only", False):
        parts["mlps"] = torch.stack([at(cache[n]) for n in mlp_names])
    parts["embed"] = at(cache[HookSite("embed").name])[None]
    if HookSite("pos_embed").name in cache:
        parts["pos_embed"] = at(cache[HookSite("pos_embed").name])[None]
    parts["biases"] = bias[None]
    return parts, at(cache[HookSite("ln_final_scale").name])


def unembed_bias(model: TransformerBridge, tokens: torch.Tensor) -> torch.Tensor:
    """b_U at ``tokens`` (zeros where the model has no unembedding bias)."""
    b_u = getattr(model, "b_U", None)
    if not isinstance(b_u, torch.Tensor):
        return torch.zeros(tokens.shape, dtype=model.W_U.dtype)
    return b_u[tokens.to(b_u.device)]


def direct_logit_attribution(model: TransformerBridge, batch: PairBatch) -> DlaResult:
    """DLA of every component on the clean prompts, per prompt; plus the logit lens.

    On a model with post-attention/post-MLP norms (Gemma-2/3) the heads' writes go through the
    post-attention norm with its scale frozen at this forward's values, and on a model with
    final-logit soft-capping the attribution is of the pre-cap logit difference (see the
    module docstring). ValueError (one line) for a post-norm that is not an RMS norm."""
    n_layers = int(model.cfg.n_layers)
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.clean)
        at = partial(_at_last, batch=batch)
        parts, scale = component_writes(model, cache, at)
        direction = model.tokens_to_residual_directions(batch.correct) - (
            model.tokens_to_residual_directions(batch.incorrect)
        )  # [batch, d_model]
        b_u = unembed_bias(model, batch.correct) - unembed_bias(model, batch.incorrect)
        attrs = project_components(model, parts, scale, direction, b_u)
        lens = torch.stack([metric_per_prompt("logit_diff", layer_logits, batch)
                            for layer_logits in lens_logits(model, cache, at)])  # fmt: skip
    for k, v in attrs.items():
        if not torch.isfinite(v).all():
            raise ValueError(f"NaN or inf in the direct logit attribution of {k}")
    return DlaResult(
        heads=attrs["heads"].reshape(n_layers, -1, batch.n_pairs).cpu(),
        mlps=attrs["mlps"].cpu() if "mlps" in attrs else None,
        embed=attrs["embed"][0].cpu(),
        pos_embed=attrs["pos_embed"][0].cpu() if "pos_embed" in attrs else None,
        biases=attrs["biases"][0].cpu(),
        logit_lens=lens.cpu(),
    )


def project_components(
    model: TransformerBridge,
    parts: dict[str, torch.Tensor],
    scale: torch.Tensor,
    direction: torch.Tensor,
    b_u: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Each component of ``component_writes`` as logits along ``direction`` ([batch | 1,
    d_model]) after the final norm with its cached ``scale``, [components, batch]; ``b_u``
    (b_U's share, [batch] or a number) is added to ``biases``."""
    attrs = {k: (_ln_final_stack(model, v, scale) * direction).sum(-1) for k, v in parts.items()}
    attrs["biases"] = attrs["biases"] + b_u.to(attrs["biases"].device)
    return attrs


def lens_logits(model: TransformerBridge, cache: Any, at: Positions) -> Iterator[torch.Tensor]:
    """The logit lens at the positions ``at`` picks, one [batch, d_vocab] per layer: the residual
    stream entering each layer and the final one through ``ln_final`` and ``unembed`` (a fresh
    norm per layer), soft-capped as the model's logits are, so the last is the model's own."""
    n_layers = int(model.cfg.n_layers)
    sites = [HookSite("resid_pre", i) for i in range(n_layers)]
    for site in [*sites, HookSite("resid_post", n_layers - 1)]:
        resid = at(cache[site.name])[:, None]  # [batch, 1, d_model]
        yield final_soft_cap(model, model.unembed(model.ln_final(resid)))[:, 0]


def final_soft_cap(model: TransformerBridge, logits: torch.Tensor) -> torch.Tensor:
    """The model's final-logit soft-cap ``cap * tanh(logits / cap)`` (identity without one)."""
    from analysis.models import logit_soft_cap

    cap = logit_soft_cap(model.cfg)
    return logits if cap is None else cap * torch.tanh(logits / cap)
