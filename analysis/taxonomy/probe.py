"""One cached forward per prompt, read for every pattern- and activation-based taxonomy score.

Per prompt and head it measures:

- retrieval (Wu et al. 2024): at each needle copy step, whether the head's most attended key is
  the needle token being copied *and* the model's argmax is that token; the prompt's retrieval
  score is the fraction of needle tokens so copied;
- span (``patterns.attention_span``) per query position, and its mean over queries q >= 1;
- sinks and dormancy (Active-Dormant heads): sink mass on the prompt's sinks, the norm of the
  head's value vector at position 0, and the norm of the head's output (z W_O, mean over
  queries q >= 1);
- per layer, the residual stream's massive activations (Sun et al. 2024): the largest |x| over
  positions and dimensions, its ratio to the median |x|, and where it sits;
- the heads' pairwise Jensen-Shannon distances, summed for the set's average.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float

from analysis.hooks import HookSite
from analysis.taxonomy import patterns as P
from analysis.taxonomy.batch import TaxonomyBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


class NotFinite(ValueError):
    """NaN or inf in the activations of a prompt."""


@dataclass
class PromptProbe:
    """One prompt's per-head values ([layer, head]) and per-layer massive activations."""

    sinks: list[int]
    sink_mass: torch.Tensor
    first_token_mass: torch.Tensor
    value_norm_sink: torch.Tensor
    output_norm: torch.Tensor
    span: torch.Tensor  # mean over q >= 1
    span_by_position: torch.Tensor  # [layer, head, q]
    retrieval: torch.Tensor | None  # None without a needle
    massive_peak: torch.Tensor  # [layer]
    massive_ratio: torch.Tensor
    massive_where: list[tuple[int, int]]  # (position, dimension) of each layer's peak


@dataclass
class ProbeTotals:
    prompts: list[PromptProbe] = field(default_factory=list)
    distance_sum: torch.Tensor | None = None

    def add_distance(self, d: torch.Tensor) -> None:
        self.distance_sum = d if self.distance_sum is None else self.distance_sum + d


def _names(n_layers: int) -> list[str]:
    kinds = ("pattern", "z", "v", "resid_post")
    return [HookSite(k, layer).name for layer in range(n_layers) for k in kinds]  # type: ignore[arg-type]


def _stack(cache, kind: str, n_layers: int) -> torch.Tensor:
    return torch.stack([cache[HookSite(kind, layer).name][0] for layer in range(n_layers)]).float()  # type: ignore[arg-type]


def retrieval_hits(
    pattern: Float[torch.Tensor, "layer head q k"],
    predicted: torch.Tensor,
    batch: TaxonomyBatch,
    i: int,
) -> torch.Tensor:
    """Fraction of prompt i's needle tokens each head copies (top key = the token's source)."""
    mask = batch.copy_mask[i]
    pos, target, source = (
        t[i][mask] for t in (batch.copy_pos, batch.copy_target, batch.copy_source)
    )
    top = pattern[:, :, pos, :].argmax(-1)  # [layer, head, step]
    copied = (predicted[pos] == target)[None, None, :] & (top == source[None, None, :])
    return copied.float().mean(-1)


@torch.no_grad()
def probe_prompt(
    model: TransformerBridge, batch: TaxonomyBatch, i: int, coverage: float, sink_threshold: float
) -> tuple[PromptProbe, torch.Tensor]:
    """The taxonomy's per-head values of prompt ``i`` and its heads' pattern rows [L*H, q, k]."""
    n_layers = int(model.cfg.n_layers)
    names = set(_names(n_layers))
    tokens = batch.prompt(i)[None].to(model.cfg.device)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    pattern = _stack(cache, "pattern", n_layers).cpu()  # [L, H, q, k]
    z, v = _stack(cache, "z", n_layers), _stack(cache, "v", n_layers)  # [L, pos, H|KV, d]
    resid = _stack(cache, "resid_post", n_layers)  # [L, pos, d_model]
    if not all(torch.isfinite(t).all() for t in (pattern, z, v, resid)):
        raise NotFinite(f"prompt {i}: NaN or inf in the activations; check the model's dtype")
    n_heads = pattern.shape[1]
    w_o = model.W_O.float().to(z.device)  # [L, H, d_head, d_model]
    out_norm = torch.einsum("lphd,lhdm->lhpm", z, w_o).norm(dim=-1).cpu()  # [L, H, pos]
    v_norm = v[:, 0].norm(dim=-1).repeat_interleave(n_heads // v.shape[2], dim=1).cpu()
    span = P.attention_span(pattern, coverage).float()
    sinks = P.sink_positions(pattern, sink_threshold)
    n = pattern.shape[-1]
    flat = resid.abs().flatten(1).cpu()  # [L, pos * d_model]
    peak, where = flat.max(-1)
    d_model = resid.shape[-1]
    retrieval = None
    if bool(batch.copy_mask[i].any()):
        retrieval = retrieval_hits(pattern, logits[0].argmax(-1).cpu(), batch, i)
    rest = slice(1, None) if n > 1 else slice(None)
    probe = PromptProbe(
        sinks=sinks,
        sink_mass=P.sink_mass(pattern, sinks),
        first_token_mass=P.sink_mass(pattern, [0]),
        value_norm_sink=v_norm,
        output_norm=out_norm[..., rest].mean(-1),
        span=span[..., rest].mean(-1),
        span_by_position=span,
        retrieval=retrieval,
        massive_peak=peak,
        massive_ratio=peak / flat.median(-1).values.clamp(min=1e-12),
        massive_where=[divmod(int(w), d_model) for w in where],
    )
    return probe, pattern.flatten(0, 1)


def probe_all(
    model: TransformerBridge,
    batch: TaxonomyBatch,
    coverage: float,
    sink_threshold: float,
    progress: Callable[[float, str], None] = lambda f, m: None,
) -> ProbeTotals:
    totals = ProbeTotals()
    for i in range(batch.n_prompts):
        probe, rows = probe_prompt(model, batch, i, coverage, sink_threshold)
        totals.prompts.append(probe)
        totals.add_distance(P.js_distance_matrix(rows))
        progress((i + 1) / batch.n_prompts, f"prompt {i + 1}/{batch.n_prompts}")
    return totals
