"""Attribution patching: a first-order (gradient) estimate of activation patching.

For head outputs z, the effect of patching head h of layer L over all positions is estimated as
``sum_{b, pos, d} (z_source - z_target) * dM/dz_target``, with M the mean metric over pairs,
from one forward and one backward pass on the target run plus one forward on the source run
(denoising: target = corrupted, source = clean). Normalised like exact patching:
denoising ``attr / (m_clean - m_corrupt)``; noising ``1 + attr / (m_clean - m_corrupt)``.
It is exact for linear effects and only an estimate otherwise; a patch run reports its
correlation with the exact numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from analysis.hooks import HookSite
from analysis.metrics import last_logits, metric_fn
from analysis.patching.exact import PatchSetup, check_finite

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


def attribution_patch_z(setup: PatchSetup) -> Float[torch.Tensor, "layer head"]:
    """Normalised attribution-patching estimate of ``patch_z`` (all positions) per head."""
    model: TransformerBridge = setup.model
    n_layers = int(model.cfg.n_layers)
    names = [HookSite("z", i).name for i in range(n_layers)]
    kept: dict[str, torch.Tensor] = {}

    def keep(act: torch.Tensor, hook: Any) -> torch.Tensor:
        act.retain_grad()
        kept[hook.name] = act
        return act

    with torch.enable_grad():
        logits = model.run_with_hooks(
            setup.target_tokens, fwd_hooks=[(n, keep) for n in names], reset_hooks_end=True
        )
        check_finite(logits, "the target run's logits")
        m = metric_fn(setup.metric, setup.batch, setup.clean_last)(
            last_logits(logits, setup.batch.last)
        ).mean()
        m.backward()
    model.zero_grad(set_to_none=True)
    attrs = []
    for n in names:
        grad = kept[n].grad
        if grad is None:
            raise RuntimeError(f"no gradient reached {n}; attribution patching needs autograd")
        delta = setup.source_cache[n].to(grad.dtype) - kept[n].detach()
        attrs.append((delta * grad).sum((0, 1, 3)))
    attr = torch.stack(attrs).cpu()
    scaled = attr / setup.baseline.denominator
    return scaled if setup.direction == "denoising" else 1 + scaled


def pearson(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Pearson correlation of two grids; None when either is constant."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return None if den == 0 else float((a * b).sum().item() / den)
