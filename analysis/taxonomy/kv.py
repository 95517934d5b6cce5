"""KV-cache compression simulation: the model's metrics as more and more heads turn streaming.

The unit that can drop its cache is a key/value head: under grouped-query attention several
query heads read one KV head, and its cache shrinks only when all of them stream. So a ranking
of query heads becomes a ranking of KV heads (a KV head's score is the sum of its query heads'),
and at each point the ``k`` lowest-scored KV heads stream — every query head reading them.

Memory is counted as a cache stores it: per token and layer, each full KV head holds a key and
a value of ``d_head`` numbers; a streamed one holds ``sink + window`` tokens whatever the
context, i.e. ``(sink + window) / context`` of that per token at ``context`` tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from analysis.taxonomy.batch import TaxonomyBatch
from analysis.taxonomy.streaming import StreamedHeads, forward_streamed, outcome, prompt_chunks

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

METRICS = ("loss", "logit_diff", "needle_accuracy")


def kv_shape(model: TransformerBridge) -> tuple[int, int]:
    """(KV heads per layer, query heads per KV head)."""
    n_heads = int(model.cfg.n_heads)
    n_kv = int(getattr(model.cfg, "n_key_value_heads", None) or n_heads)
    return n_kv, n_heads // n_kv


def kv_scores(head_scores: torch.Tensor, group: int) -> torch.Tensor:
    """[layer, kv_head] scores: the sum over each KV head's query heads."""
    layers, heads = head_scores.shape
    return head_scores.reshape(layers, heads // group, group).sum(-1)


def streamed_heads(
    order: list[int], k: int, shape: tuple[int, int, int], n_prompts: int
) -> StreamedHeads:
    """The first ``k`` KV heads of ``order`` (flat layer-major) streaming, for every prompt."""
    layers, n_kv, group = shape
    chosen = torch.zeros(layers, n_kv * group, dtype=torch.bool)
    for flat in order[:k]:
        layer, kv = divmod(flat, n_kv)
        chosen[layer, kv * group : (kv + 1) * group] = True
    return {layer: chosen[layer].expand(n_prompts, -1) for layer in range(layers)}


def kv_bytes_per_token(
    model: TransformerBridge, streamed: int, context: int, sink: int, window: int, bytes_per: int
) -> float:
    """KV-cache bytes per token (all layers) with ``streamed`` KV heads streaming."""
    n_kv, _ = kv_shape(model)
    per_head = 2 * int(model.cfg.d_head) * bytes_per
    total = int(model.cfg.n_layers) * n_kv
    kept = min(1.0, (sink + window) / max(context, 1))
    return per_head * ((total - streamed) + streamed * kept)


def _metrics_at(
    model: TransformerBridge, batch: TaxonomyBatch, streamed_for: Callable[[int], StreamedHeads],
    sink: int, window: int,
) -> dict[str, float]:  # fmt: skip
    parts: dict[str, list[torch.Tensor]] = {m: [] for m in METRICS}
    for index in prompt_chunks(batch, int(model.cfg.d_vocab)):
        sub = batch.select(index)
        logits = forward_streamed(
            model, sub.tokens.to(model.cfg.device), streamed_for(sub.n_prompts), sink, window
        ).cpu()
        out = outcome(logits, sub, None, sink + window)
        for m in METRICS:
            parts[m].append(getattr(out, m))
    return {m: float(torch.cat(v).nanmean()) for m, v in parts.items()}


def kv_curve(
    model: TransformerBridge,
    batch: TaxonomyBatch,
    rankings: dict[str, torch.Tensor],
    points: int,
    seeds: int,
    sink: int,
    window: int,
    progress: Callable[[float, str], None] = lambda f, m: None,
) -> dict[str, Any]:
    """Metrics against the fraction of KV heads streaming, per ranking (lowest score streams
    first) and at random (mean and std over ``seeds``), with the KV bytes per token."""
    n_kv, group = kv_shape(model)
    layers = int(model.cfg.n_layers)
    total = layers * n_kv
    ks = sorted({round(total * i / (points - 1)) for i in range(points)})
    orders: dict[str, list[list[int]]] = {
        name: [torch.argsort(kv_scores(s.float(), group).flatten(), stable=True).tolist()]
        for name, s in rankings.items()
    }
    orders["random"] = [
        torch.randperm(total, generator=torch.Generator().manual_seed(seed)).tolist()
        for seed in range(seeds)
    ]
    shape = (layers, n_kv, group)
    runs = sum(len(o) for o in orders.values()) * len(ks)
    done = 0
    curves: dict[str, dict[str, dict[str, list[float | None]]]] = {}
    for name, seed_orders in orders.items():
        values = torch.zeros(len(seed_orders), len(ks), len(METRICS), dtype=torch.float64)
        for si, order in enumerate(seed_orders):
            for ki, k in enumerate(ks):

                def streamed_for(n: int, o: list[int] = order, k: int = k) -> StreamedHeads:
                    return streamed_heads(o, k, shape, n)

                m = _metrics_at(model, batch, streamed_for, sink, window)
                values[si, ki] = torch.tensor([m[x] for x in METRICS], dtype=torch.float64)
                done += 1
                progress(done / runs, f"KV simulation: {name}, {k}/{total} KV heads streaming")
        std = values.std(0, unbiased=False) if len(seed_orders) > 1 else torch.zeros_like(values[0])
        curves[name] = {
            m: {"mean": _floats(values.mean(0)[:, j]), "std": _floats(std[:, j])}
            for j, m in enumerate(METRICS)
            if batch.has_needles or m != "needle_accuracy"
        }
    context = int(model.cfg.n_ctx)
    bytes_per = torch.finfo(model.W_Q.dtype).bits // 8
    kv_bytes = [kv_bytes_per_token(model, k, context, sink, window, bytes_per) for k in ks]
    return {
        "fractions": [k / total for k in ks], "streamed_kv_heads": ks, "kv_heads": total,
        "query_heads_per_kv_head": group, "context": context, "bytes_per_value": bytes_per,
        "sink": sink, "window": window, "kv_bytes_per_token": kv_bytes,
        "kv_saved": [1 - b / kv_bytes[0] for b in kv_bytes], "curves": curves,
        "n_forward_prompts": runs * batch.n_prompts,
    }  # fmt: skip


def _floats(t: torch.Tensor) -> list[float | None]:
    return [None if v != v else float(v) for v in t.tolist()]
