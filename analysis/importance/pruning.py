"""Pruning curves: the task metric and the LM loss as more and more heads are removed.

A head is removed by its mask gate (ξ_h = 0, ``analysis.importance.mask``: zeroed as Michel et
al. 2019, or mean / resample ablated). Orders say which head goes next, least important first:

- ``gradient``: ascending gradient importance at the full model, computed once;
- ``gradient_iterative``: Michel's iterative pruning: remove the ``step`` least important
  remaining heads, recompute the gradient importance at the pruned mask, repeat;
- ``ablation``: ascending ablation importance |effect of removing the head alone|;
- ``score``: any stored per-head score of a finished run (ascending or descending);
- ``random``: uniformly random orders, one per seed; the curve is their mean ± std.

Every order's curve is evaluated at the same numbers of heads removed, ``k_i = round(N i /
(points - 1))`` of the ``N`` heads; all masks of all orders go through one ``MaskEvaluator``
(batched, duplicates evaluated once). The fraction prunable at ≤ X % metric loss is the
largest fraction ``k/N`` on the curve such that the metric stays ≥ (1 - X) × the clean metric at
that point and every point before it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float

from analysis.importance.evaluate import MaskEvaluator, Progress

Order = list[int]  # flat head indices (layer * n_heads + head), removed first to last
ScoreFn = Callable[[Float[torch.Tensor, "layer head"]], Float[torch.Tensor, "layer head"]]


def removal_counts(n_heads: int, points: int) -> list[int]:
    """Heads removed at each curve point, from 0 to all (distinct, ascending)."""
    return sorted({round(n_heads * i / (points - 1)) for i in range(points)})


def ascending_order(score: torch.Tensor) -> Order:
    """Flat head indices by ascending score (ties in layer-major order)."""
    return torch.argsort(score.flatten().double(), stable=True).tolist()


def random_orders(n_heads: int, seeds: int, seed: int) -> list[Order]:
    """One uniformly random order per seed (``seed``, ``seed + 1``, …), reproducible."""
    return [
        torch.randperm(n_heads, generator=torch.Generator().manual_seed(seed + i)).tolist()
        for i in range(seeds)
    ]


def iterative_order(importance_at: ScoreFn, shape: tuple[int, int], step: int) -> tuple[Order, int]:
    """Michel's iterative order: the ``step`` least important remaining heads at the current
    mask go next, then importance is recomputed. Returns the order and the recomputations."""
    layers, heads = shape
    mask = torch.ones(layers, heads)
    order: Order = []
    passes = 0
    while len(order) < layers * heads:
        score = importance_at(mask).flatten().double()
        passes += 1
        gone = set(order)
        remaining = [i for i in ascending_order(score) if i not in gone]
        order += remaining[:step]
        mask.view(-1)[order] = 0.0
    return order, passes


def prefix_masks(order: Order, counts: list[int], shape: tuple[int, int]) -> torch.Tensor:
    """[point, layer, head]: the first ``k`` heads of ``order`` removed, for each ``k``."""
    masks = torch.ones(len(counts), shape[0] * shape[1])
    for i, k in enumerate(counts):
        masks[i, order[:k]] = 0.0
    return masks.reshape(len(counts), *shape)


def prunable_fraction(
    fractions: list[float], metric: list[float], clean: float, max_drop: float
) -> float | None:
    """The largest fraction whose metric, and every earlier point's, keeps ≥ (1 - max_drop) of
    ``clean``; None when the clean metric is not positive (no relative loss to speak of)."""
    if not clean > 0:
        return None
    best = 0.0
    for f, m in zip(fractions, metric, strict=True):
        if m < (1 - max_drop) * clean:
            break
        best = f
    return best


def _floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.tolist()]


def pruning_curves(
    evaluator: MaskEvaluator,
    orders: dict[str, list[Order]],
    shape: tuple[int, int],
    points: int,
    max_drop: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Metric and loss (mean ± std over an order's seeds) against the fraction removed."""
    n_heads = shape[0] * shape[1]
    counts = removal_counts(n_heads, points)
    fractions = [k / n_heads for k in counts]
    blocks = [prefix_masks(o, counts, shape) for seeds in orders.values() for o in seeds]
    out = evaluator.evaluate(torch.cat(blocks), progress)
    metric = out.metric.reshape(-1, len(counts))
    loss = out.loss.reshape(-1, len(counts))
    curves: dict[str, Any] = {}
    prunable: dict[str, float | None] = {}
    start = 0
    for name, seeds in orders.items():
        rows = slice(start, start + len(seeds))
        start += len(seeds)
        m, lo = metric[rows], loss[rows]
        curves[name] = {
            "metric": {"mean": _floats(m.mean(0)), "std": _floats(m.std(0, unbiased=False))},
            "loss": {"mean": _floats(lo.mean(0)), "std": _floats(lo.std(0, unbiased=False))},
            "seeds": len(seeds),
        }
        prunable[name] = prunable_fraction(
            fractions, curves[name]["metric"]["mean"], float(metric[0, 0]), max_drop
        )
    return {
        "fractions": fractions,
        "heads_removed": counts,
        "n_heads": n_heads,
        "metric_clean": float(metric[0, 0]),
        "loss_clean": float(loss[0, 0]),
        "max_metric_drop": max_drop,
        "orders": curves,
        "prunable": prunable,
        "n_masks": int(metric.numel()),
    }
