"""Direct logit attribution (DLA) and the logit lens.

DLA splits the final residual stream at each prompt's last position into the components that
wrote it — token embedding (``embed``), positional embedding (``pos_embed``, where the model has
one), every head's output ``z[h] @ W_O[h]`` and every MLP output — and projects each onto the
logit-difference direction ``W_U[:, correct] - W_U[:, incorrect]`` after the final LayerNorm,
handled as TransformerLens' ``ActivationCache.apply_ln_to_stack`` does: centre (LayerNorm
only) and divide by the final norm's cached scale at that position. Biases (b_O, MLP biases
already inside ``mlp_out``) are not split out. Requires the bridge's compatibility mode so that
the weights are TransformerLens-processed (final-norm weights folded into ``W_U``).

The logit lens reads the residual stream entering each layer (and the final one) at the last
position through ``ln_final`` + ``unembed`` (a fresh norm per layer) and reports the logit diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from analysis.hooks import HookSite, hook_names
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


def direct_logit_attribution(model: TransformerBridge, batch: PairBatch) -> DlaResult:
    """DLA of every component on the clean prompts, per prompt; plus the logit lens.

    Refused (ValueError) for blocks that normalise their attention and MLP outputs before
    adding them (Gemma-2/3): the final residual stream is then not the sum of the heads'
    ``z @ W_O`` and the MLP outputs."""
    from analysis.models import sandwich_norms

    if sandwich_norms(model):
        raise ValueError(
            f"{getattr(model.cfg, 'architecture', 'this model')}: direct logit attribution "
            "needs the residual stream to be the sum of the heads' z @ W_O and the MLP outputs; "
            "this model adds them through post-attention/post-MLP norms (Gemma-2 style)"
        )
    n_layers = int(model.cfg.n_layers)
    with torch.no_grad():
        logits, cache = model.run_with_cache(batch.clean)
        names = hook_names(model)
        z = torch.stack([_at_last(cache[HookSite("z", i).name], batch) for i in range(n_layers)])
        heads = torch.einsum("lbhd,lhdm->lhbm", z, model.W_O)  # [layer, head, batch, d_model]
        parts = {"heads": heads.reshape(-1, *heads.shape[2:])}
        mlp_names = [HookSite("mlp_out", i).name for i in range(n_layers)]
        if all(n in names for n in mlp_names) and not getattr(model.cfg, "attn_only", False):
            parts["mlps"] = torch.stack([_at_last(cache[n], batch) for n in mlp_names])
        parts["embed"] = _at_last(cache[HookSite("embed").name], batch)[None]
        if HookSite("pos_embed").name in cache:
            parts["pos_embed"] = _at_last(cache[HookSite("pos_embed").name], batch)[None]
        scale = _at_last(cache[HookSite("ln_final_scale").name], batch)  # [batch, 1]
        direction = model.tokens_to_residual_directions(batch.correct) - (
            model.tokens_to_residual_directions(batch.incorrect)
        )  # [batch, d_model]
        attrs = {
            k: (_ln_final_stack(model, v, scale) * direction).sum(-1) for k, v in parts.items()
        }
        lens = _logit_lens(model, cache, batch)
    for k, v in attrs.items():
        if not torch.isfinite(v).all():
            raise ValueError(f"NaN or inf in the direct logit attribution of {k}")
    return DlaResult(
        heads=attrs["heads"].reshape(n_layers, -1, batch.n_pairs).cpu(),
        mlps=attrs["mlps"].cpu() if "mlps" in attrs else None,
        embed=attrs["embed"][0].cpu(),
        pos_embed=attrs["pos_embed"][0].cpu() if "pos_embed" in attrs else None,
        logit_lens=lens.cpu(),
    )


def _logit_lens(model: TransformerBridge, cache: Any, batch: PairBatch) -> torch.Tensor:
    n_layers = int(model.cfg.n_layers)
    resid = [_at_last(cache[HookSite("resid_pre", i).name], batch) for i in range(n_layers)]
    resid.append(_at_last(cache[HookSite("resid_post", n_layers - 1).name], batch))
    out = []
    for r in resid:
        logits = model.unembed(model.ln_final(r[:, None, :]))[:, 0]
        out.append(metric_per_prompt("logit_diff", logits, batch))
    return torch.stack(out)
