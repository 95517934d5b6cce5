"""Exact activation patching: one full forward of the model per patch variant.

This is the reference path, the same computation as ``transformer_lens.patching``: for each
variant, run the target prompts with one hook that overwrites the variant's slice with the
source run's activation, and read the metric at each prompt's last position. It is slow (one
forward per head, per position) and exists so that the fast path can be tested equal to it.

Directions: ``denoising`` (default) patches clean activations into the corrupted run;
``noising`` patches corrupted activations into the clean run. Results are the mean metric over
pairs, and its normalisation ``(m - m_corrupt) / (m_clean - m_corrupt)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float

from analysis.metrics import MetricBaseline, last_logits, metric_baseline, metric_fn
from analysis.patching.strategies import PatchTarget, Variant, patch_hook
from analysis.prompt_batch import PairBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

Direction = Literal["denoising", "noising"]


class ActivationNotFinite(ValueError):
    """NaN or inf appeared in a model's activations or logits."""


def check_finite(t: torch.Tensor, what: str) -> None:
    if not torch.isfinite(t).all():
        bad = "NaN" if torch.isnan(t).any() else "inf"
        raise ActivationNotFinite(
            f"{bad} in {what}; the model or its dtype overflows on these prompts "
            "(try dtype float32, or check the weights)"
        )


@dataclass(frozen=True)
class PatchSetup:
    """Everything both patching paths share: tokens, source activations and the baseline."""

    model: TransformerBridge
    batch: PairBatch
    metric: str
    direction: Direction
    target_tokens: torch.Tensor
    source_cache: dict[str, torch.Tensor]
    clean_last: Float[torch.Tensor, "batch d_vocab"]
    baseline: MetricBaseline

    def mean_metric(self, logits_last: torch.Tensor) -> Float[torch.Tensor, " copies"]:
        """Mean metric over pairs for each stacked copy of the batch."""
        values = metric_fn(self.metric, self.batch, self.clean_last)(logits_last)
        return values.reshape(-1, self.batch.n_pairs).mean(-1)


def prepare(
    model: TransformerBridge, batch: PairBatch, metric: str, direction: Direction = "denoising"
) -> PatchSetup:
    """Run clean and corrupted once, cache the source run, compute the baseline."""
    if direction not in ("denoising", "noising"):
        raise ValueError(f"direction must be denoising or noising, not {direction!r}")
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(batch.clean)
        corrupt_logits, corrupt_cache = model.run_with_cache(batch.corrupted)
    check_finite(clean_logits, "the clean run's logits")
    check_finite(corrupt_logits, "the corrupted run's logits")
    clean_last = last_logits(clean_logits, batch.last)
    corrupt_last = last_logits(corrupt_logits, batch.last)
    baseline = metric_baseline(metric, clean_last, corrupt_last, batch)
    baseline.normalise(torch.zeros(1))  # raises MetricUndefined on a zero denominator
    source, target = (
        (clean_cache, batch.corrupted) if direction == "denoising" else (corrupt_cache, batch.clean)
    )
    return PatchSetup(
        model=model,
        batch=batch,
        metric=metric,
        direction=direction,
        target_tokens=target,
        source_cache={k: v for k, v in source.items()},
        clean_last=clean_last,
        baseline=baseline,
    )


@dataclass(frozen=True)
class PatchResult:
    """Mean metric per (layer, variant); variants in TransformerLens order."""

    target: PatchTarget
    variants: list[Variant]
    values: Float[torch.Tensor, "layer variant"]
    normalised: Float[torch.Tensor, "layer variant"]

    def tl_shaped(self, n_layers: int, n_pos: int, n_heads: int) -> torch.Tensor:
        """The normalised grid in the shape ``transformer_lens.patching`` returns."""
        t = self.target
        if t.kind == "resid_pre":
            dims = [n_pos]
        elif not t.per_position:
            dims = [n_heads]
        elif t.kind == "pattern":
            dims = [n_heads, n_pos]
        else:
            dims = [n_pos, n_heads]
        return self.normalised.reshape(n_layers, *dims)


def site_activation(setup: PatchSetup, name: str) -> torch.Tensor:
    if name not in setup.source_cache:
        raise KeyError(f"the model has no activation {name!r} to patch")
    act = setup.source_cache[name]
    check_finite(act, f"the source activation {name}")
    return act


def exact_patch(
    setup: PatchSetup,
    target: PatchTarget,
    positions: Sequence[int] | None = None,
    progress: Callable[[float, str], None] | None = None,
    normalise: bool = True,
) -> PatchResult:
    """Patch every variant of ``target`` at every layer, one full forward each."""
    model = setup.model
    n_layers = int(model.cfg.n_layers)
    variants = target.variants(model, setup.batch.n_pos, positions)
    values = torch.zeros(n_layers, len(variants))
    for layer in range(n_layers):
        name = target.site(layer).name
        source = site_activation(setup, name)
        for j, variant in enumerate(variants):
            hook = patch_hook(target, [variant], source)
            with torch.no_grad():
                logits = model.run_with_hooks(setup.target_tokens, fwd_hooks=[(name, hook)])
            lg = last_logits(logits, setup.batch.last)
            check_finite(lg, f"the logits patched at {name}")
            values[layer, j] = setup.mean_metric(lg)[0]
        if progress is not None:
            progress((layer + 1) / n_layers, f"exact {target.metric_name}: layer {layer}")
    normalised = setup.baseline.normalise(values) if normalise else values
    return PatchResult(target, variants, values, normalised)
