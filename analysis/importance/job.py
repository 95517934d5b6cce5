"""Job of the run kind ``importance``: gradient and ablation importance per head, pruning curves.

Per-head metrics (aggregate rows; docs/heads.md, "Head importance and pruning"):

- ``grad_importance``: ``mean_x |∂L(x)/∂ξ_h|`` at ξ = 1 (normalised per layer when asked;
  then ``grad_importance_raw`` holds the unnormalised value); ``grad_signed``: ``mean_x
  ∂L/∂ξ_h``, the first-order change of ``L`` per unit of the head's gate;
- ``ablate_<method>``: ``m_ablated - m_clean`` of the task metric, removing the head alone (the
  ablate run's number, from ``analysis.ablation.ablate_heads``); ``ablate_loss_<method>``: the
  same for the LM loss; ``ablation_importance``: |the one of the objective|;
- ``pruned_at``: the fraction of heads already removed when the head goes, in the first gradient
  order of the run (high = important).

The summary holds the objective, the Spearman rank correlation of gradient and ablation
importance, the heads ranked by both, the pruning curves of every order and the fraction
prunable at ≤ ``max_metric_drop`` metric loss per order, and each stage's cost.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from scipy.stats import spearmanr

from analysis.ablation import ablate_heads
from analysis.configs.importance import ImportanceConfig
from analysis.heads_job import input_errors
from analysis.importance.evaluate import MaskEvaluator
from analysis.importance.gradient import head_gradients, importance, normalise_per_layer
from analysis.importance.mask import mask_sources, require_effective_mask
from analysis.importance.pruning import (
    Order,
    ascending_order,
    iterative_order,
    pruning_curves,
    random_orders,
)
from analysis.importance.scores import ScoreError, stored_score
from analysis.jobs import JobContext, JobError, grid_rows
from analysis.metrics import last_logits, metric_baseline
from analysis.prompt_batch import PairBatch, build_pair_batch
from storage.records import HeadResultIn, RunOutput


def head_label(flat: int, n_heads: int) -> str:
    return f"a{flat // n_heads}.h{flat % n_heads}"


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float | None:
    rho = spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic
    return None if not math.isfinite(float(rho)) else float(rho)


class _Importance:
    """Gradient importance at any mask, counting its forward + backward passes."""

    def __init__(self, model, batch: PairBatch, cfg: ImportanceConfig, sources) -> None:
        self.model, self.batch, self.cfg, self.sources = model, batch, cfg, sources
        self.passes = 0

    def grads(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.passes += 1
        return head_gradients(
            self.model, self.batch, self.cfg.objective, self.cfg.metric, self.sources, mask
        )

    def score(self, mask: torch.Tensor) -> torch.Tensor:
        """Importance at ``mask``; removed heads score 0 before the per-layer norm."""
        s = importance(self.grads(mask)) * (mask > 0)
        return normalise_per_layer(s) if self.cfg.normalise_layers else s


def _reporting(ctx: JobContext, grad_fn: _Importance, n_heads: int):
    """``grad_fn.score`` that reports how far the iterative order has got."""

    def score(mask: torch.Tensor) -> torch.Tensor:
        gone = int((mask == 0).sum())
        ctx.progress(0.35 + 0.25 * gone / n_heads, f"iterative order: {gone}/{n_heads} removed")
        return grad_fn.score(mask)

    return score


def _ablation(ctx: JobContext, model, batch, cfg: ImportanceConfig, evaluator: MaskEvaluator):
    """(signed metric effect, signed loss effect) of removing each head alone."""
    layers, heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    with input_errors():
        effect = ablate_heads(model, batch, cfg.ablation, cfg.metric, ctx.stage(0.15, 0.3))
    singles = torch.ones(layers * heads + 1, layers * heads)
    singles[1:] -= torch.eye(layers * heads)
    out = evaluator.evaluate(singles.reshape(-1, layers, heads), ctx.stage(0.3, 0.35))
    loss_effect = (out.loss[1:] - out.loss[0]).float().reshape(layers, heads)
    return effect.float(), loss_effect


def _score_order(ctx: JobContext, cfg: ImportanceConfig, shape: tuple[int, int]) -> Order:
    assert cfg.score_run is not None and cfg.score_metric is not None
    try:
        score = stored_score(ctx.store, cfg.score_run, cfg.score_metric, shape)
    except ScoreError as exc:
        raise JobError(str(exc)) from None
    score = score.abs() if cfg.score_abs else score
    return ascending_order(score if cfg.score_ascending else -score)


def _check_batch(model, batch: PairBatch, cfg: ImportanceConfig) -> dict[str, float]:
    if cfg.ablation == "resample" and batch.n_pairs < 2:
        raise JobError("ablation resample needs at least 2 pairs to resample from")
    if cfg.objective == "loss" and int(batch.lengths.min()) < 2:
        raise JobError("objective loss needs prompts of at least 2 tokens (a token to predict)")
    with input_errors():
        require_effective_mask(model, batch.clean[:1])
    with torch.no_grad():
        clean = last_logits(model(batch.clean), batch.last)
        corrupt = last_logits(model(batch.corrupted), batch.last)
    base = metric_baseline(cfg.metric, clean, corrupt, batch)
    return {"metric_clean": base.clean, "metric_corrupt": base.corrupt}


def importance_job(ctx: JobContext) -> RunOutput:
    t_start = time.perf_counter()
    cfg = ctx.config_as(ImportanceConfig)
    model = ctx.model()
    with input_errors():
        batch = build_pair_batch(model, ctx.pairs()[: cfg.max_pairs])
    shape = (int(model.cfg.n_layers), int(model.cfg.n_heads))
    n_heads = shape[0] * shape[1]
    baseline = _check_batch(model, batch, cfg)
    score_order = _score_order(ctx, cfg, shape) if cfg.score_run is not None else None
    cost: dict[str, dict[str, float]] = {}

    t0 = time.perf_counter()
    ctx.progress(0.02, f"gradient importance over {batch.n_pairs} prompts")
    sources = mask_sources(model, batch, cfg.ablation)
    grad_fn = _Importance(model, batch, cfg, sources)
    with input_errors():
        grads = grad_fn.grads()
    raw = importance(grads)
    grad_imp = normalise_per_layer(raw) if cfg.normalise_layers else raw
    cost["gradient importance"] = {"forward_backward_passes": 1, "wall_s": time.perf_counter() - t0}

    t0 = time.perf_counter()
    evaluator = MaskEvaluator(model, batch, cfg.metric, sources)
    with input_errors():
        effect, loss_effect = _ablation(ctx, model, batch, cfg, evaluator)
    abl_imp = (loss_effect if cfg.objective == "loss" else effect).abs()
    cost["ablation importance"] = {"wall_s": time.perf_counter() - t0}

    t0 = time.perf_counter()
    ctx.progress(0.35, "pruning orders")
    orders: dict[str, list[Order]] = {}
    for name in cfg.orders:
        if name == "gradient":
            orders[name] = [ascending_order(grad_imp)]
        elif name == "gradient_iterative":
            step = max(1, round(cfg.iterative_step * n_heads))
            with input_errors():
                order, passes = iterative_order(_reporting(ctx, grad_fn, n_heads), shape, step)
            orders[name] = [order]
            cost["iterative gradient order"] = {
                "forward_backward_passes": passes, "wall_s": time.perf_counter() - t0,
            }  # fmt: skip
        elif name == "ablation":
            orders[name] = [ascending_order(abl_imp)]
        else:
            orders[name] = random_orders(n_heads, cfg.random_seeds, cfg.seed)
    if score_order is not None:
        orders["score"] = [score_order]

    t0 = time.perf_counter()
    ctx.progress(0.6, f"pruning curves: {len(orders)} orders × {cfg.curve_points} points")
    before = (evaluator.forwards, evaluator.rows)
    with input_errors():
        curve = pruning_curves(evaluator, orders, shape, cfg.curve_points, cfg.max_metric_drop,
                               ctx.stage(0.6, 0.98))  # fmt: skip
    cost["pruning curves"] = {
        "batched_forwards": evaluator.forwards - before[0],
        "forward_prompts": evaluator.rows - before[1],
        "wall_s": time.perf_counter() - t0,
    }

    rows = _rows(cfg, grads, raw, grad_imp, effect, loss_effect, abl_imp, orders)
    ctx.progress(1.0, "done")
    summary: dict[str, Any] = {
        "objective": cfg.objective, "metric": cfg.metric, "ablation": cfg.ablation,
        "normalise_layers": cfg.normalise_layers, "n_prompts": batch.n_pairs, **baseline,
        "spearman_grad_ablation": _spearman(grad_imp, abl_imp),
        "heads_by_gradient": [head_label(i, shape[1]) for i in ascending_order(-grad_imp)],
        "heads_by_ablation": [head_label(i, shape[1]) for i in ascending_order(-abl_imp)],
        "pruning_curve": curve,
        "prunable": curve["prunable"],
        "score_order": None if score_order is None else {
            "run": cfg.score_run, "metric": cfg.score_metric,
            "ascending": cfg.score_ascending, "abs": cfg.score_abs,
        },
        "cost": cost,
        "wall_s": time.perf_counter() - t_start,
    }  # fmt: skip
    return RunOutput(head_results=rows, summary=summary)


def _rows(cfg, grads, raw, grad_imp, effect, loss_effect, abl_imp, orders) -> list[HeadResultIn]:
    rows = grid_rows("grad_importance", grad_imp)
    if cfg.normalise_layers:
        rows += grid_rows("grad_importance_raw", raw)
    rows += grid_rows("grad_signed", grads.mean(0))
    rows += grid_rows(f"ablate_{cfg.ablation}", effect)
    rows += grid_rows(f"ablate_loss_{cfg.ablation}", loss_effect)
    rows += grid_rows("ablation_importance", abl_imp)
    first = next((orders[k][0] for k in ("gradient_iterative", "gradient") if k in orders), None)
    if first is not None:
        layers, heads = grad_imp.shape
        pruned_at = torch.zeros(layers * heads)
        pruned_at[first] = torch.arange(layers * heads, dtype=torch.float32) / (layers * heads)
        rows += grid_rows("pruned_at", pruned_at.reshape(layers, heads))
    return rows
