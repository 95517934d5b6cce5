"""Job of the run kind ``taxonomy``: every score of ``analysis.taxonomy``, stored per head.

Per-head metrics (aggregate rows; see docs/heads.md for definitions and what the zoo shows):
``retrieval_score`` (needle sets), ``streaming_kl``, ``streaming_loss_delta``,
``streaming_logit_diff_delta``, ``streaming_needle_delta`` (needle sets), ``streaming_head``
(1 = classed streaming), ``echo_score``, ``induction_score``, ``razor_score`` and
``razor_retrieval`` (1 = kept by RazorAttention's criterion), ``span``, ``sink_mass``,
``first_token_mass``, ``value_norm_sink``, ``output_norm``, ``dormancy_rate``, ``cluster``,
``representative``. Per prompt (``prompt`` set): ``retrieval_score``, ``sink_mass``,
``output_norm_ratio``, ``dormant``. Per position: ``span``. Per layer: ``massive_peak``,
``massive_ratio``. The summary holds the KV-cache curve, the rankings' agreement, each prompt's
needle depth and context, the sinks found, and each stage's cost.
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch
from scipy.stats import spearmanr

from analysis import heads as head_stats
from analysis.configs.taxonomy import TaxonomyConfig
from analysis.heads_job import input_errors, repeated_sequences
from analysis.jobs import JobContext, JobError, grid_rows
from analysis.prompt_batch import build_pair_batch
from analysis.taxonomy import patterns as P
from analysis.taxonomy.batch import NeedleError, taxonomy_batch
from analysis.taxonomy.kv import kv_curve, kv_scores, kv_shape
from analysis.taxonomy.probe import NotFinite, ProbeTotals, probe_all
from analysis.taxonomy.streaming import (
    HeadDeviation,
    StreamingNotExact,
    check_streaming_exact,
    head_deviation,
)
from storage.records import ArtifactIn, HeadResultIn, RunOutput


def _mean(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(values).float().mean(0)


def _prompt_rows(metric: str, grids: list[torch.Tensor]) -> list[HeadResultIn]:
    return [r for i, g in enumerate(grids) for r in grid_rows(metric, g, prompt=i)]


def _span_position_rows(totals: ProbeTotals) -> list[HeadResultIn]:
    width = max(p.span_by_position.shape[-1] for p in totals.prompts)
    layers, heads = totals.prompts[0].span.shape
    acc, count = torch.zeros(layers, heads, width), torch.zeros(width)
    for p in totals.prompts:
        n = p.span_by_position.shape[-1]
        acc[..., :n] += p.span_by_position
        count[:n] += 1
    mean = acc / count.clamp(min=1)
    return [
        HeadResultIn("span", layer, head, float(mean[layer, head, q]), position=q)
        for layer in range(layers) for head in range(heads) for q in range(width)
    ]  # fmt: skip


def _probe_rows(totals: ProbeTotals, cfg: TaxonomyConfig) -> tuple[list[HeadResultIn], dict]:
    ps = totals.prompts
    out_mean = _mean([p.output_norm for p in ps]).clamp(min=1e-12)
    ratios = [p.output_norm / out_mean for p in ps]
    dormant = [
        ((p.sink_mass >= cfg.dormant_sink_mass) & (r <= cfg.dormant_norm_ratio)).float()
        for p, r in zip(ps, ratios, strict=True)
    ]
    rows = []
    for name in ("sink_mass", "first_token_mass", "value_norm_sink", "output_norm", "span"):
        rows += grid_rows(name, _mean([getattr(p, name) for p in ps]))
    rows += grid_rows("dormancy_rate", _mean(dormant))
    rows += _prompt_rows("sink_mass", [p.sink_mass for p in ps])
    rows += _prompt_rows("output_norm_ratio", ratios)
    rows += _prompt_rows("dormant", dormant)
    rows += _span_position_rows(totals)
    retrieval = [p.retrieval for p in ps]
    needle = [r for r in retrieval if r is not None]
    if needle:
        rows += grid_rows("retrieval_score", _mean(needle))
        rows += [
            row for i, r in enumerate(retrieval) if r is not None
            for row in grid_rows("retrieval_score", r, prompt=i)
        ]  # fmt: skip
    peak, ratio = _mean([p.massive_peak for p in ps]), _mean([p.massive_ratio for p in ps])
    for layer in range(len(peak)):
        rows.append(HeadResultIn("massive_peak", layer, None, float(peak[layer])))
        rows.append(HeadResultIn("massive_ratio", layer, None, float(ratio[layer])))
    massive = []
    for layer in range(len(peak)):
        where = [p.massive_where[layer] for p in ps]
        pos = max({w[0] for w in where}, key=[w[0] for w in where].count)
        dim = max({w[1] for w in where}, key=[w[1] for w in where].count)
        massive.append({"layer": layer, "peak": float(peak[layer]), "ratio": float(ratio[layer]),
                        "position": pos, "dimension": dim})  # fmt: skip
    dormant_all = _mean(dormant)
    summary = {
        "sinks": [p.sinks for p in ps],
        "massive_activations": massive,
        "dormant_fraction": float(dormant_all.mean()),
        "retrieval_prompts": len(needle),
    }
    return rows, summary


def _razor(model, cfg: TaxonomyConfig) -> dict[str, torch.Tensor]:
    seqs = repeated_sequences(model, cfg.repeated_sequences, cfg.repeat_length, cfg.seed)
    if len(seqs[0]) > int(model.cfg.n_ctx):
        raise JobError(
            f"repeated sequences of {len(seqs[0])} tokens exceed the context of "
            f"{model.cfg.n_ctx}; lower --repeat-length"
        )
    stats = []
    for seq in seqs:
        tokens = torch.as_tensor([seq], device=model.cfg.device)
        (pattern,) = head_stats.prompt_patterns(model, tokens, [len(seq)])
        stats.append(head_stats.pattern_statistics(pattern, torch.as_tensor(seq)))
    echo = _mean([s["duplicate_token_score"] for s in stats])
    induction = _mean([s["induction_score"] for s in stats])
    return {"echo_score": echo, "induction_score": induction,
            "razor_score": torch.maximum(echo, induction)}  # fmt: skip


def _duo_score(dev: HeadDeviation, ranking: str) -> torch.Tensor:
    if ranking == "kl":
        return dev.kl
    return (dev.logit_diff_delta if ranking == "logit_diff" else dev.loss_delta).abs()


def _classes(model, score: torch.Tensor, fraction: float, low_streams: bool) -> torch.Tensor:
    """1 for the query heads of the ``fraction`` of KV heads that stream (lowest ``score``
    when ``low_streams``), else 0."""
    n_kv, group = kv_shape(model)
    flat = kv_scores(score, group).flatten()
    k = round(fraction * flat.numel())
    order = torch.argsort(flat if low_streams else -flat, stable=True)
    streams = torch.zeros_like(flat)
    streams[order[:k]] = 1.0
    return streams.reshape(-1, n_kv).repeat_interleave(group, dim=1)


def _agreement(duo: torch.Tensor, razor: torch.Tensor, duo_cls, razor_cls) -> dict[str, Any]:
    rho = spearmanr(duo.flatten().numpy(), razor.flatten().numpy()).statistic
    keep_duo, keep_razor = duo_cls.flatten() == 0, razor_cls.flatten() == 1
    both = int((keep_duo & keep_razor).sum())
    either = int((keep_duo | keep_razor).sum())
    return {
        "spearman_duo_razor": None if rho != rho else float(rho),
        "retrieval_heads_jaccard": both / either if either else None,
        "retrieval_heads_duo": int(keep_duo.sum()),
        "retrieval_heads_razor": int(keep_razor.sum()),
    }


def _similarity(ctx: JobContext, totals: ProbeTotals, shape, n_clusters: int):
    layers, heads = shape
    assert totals.distance_sum is not None
    distance = totals.distance_sum / len(totals.prompts)
    k = n_clusters or max(1, round((layers * heads) ** 0.5))
    clusters = P.cluster_heads(distance, k)
    labels = [f"{layer}.{head}" for layer in range(layers) for head in range(heads)]
    path = ctx.workdir / "head_similarity.json"
    path.write_text(json.dumps({
        "heads": labels, "distance": distance.tolist(), "order": clusters.order,
        "clusters": clusters.labels, "representatives": clusters.representatives,
        "measure": "Jensen-Shannon distance (base 2) of attention rows, mean over queries, prompts",
    }))  # fmt: skip
    grid = torch.tensor(clusters.labels, dtype=torch.float32).reshape(layers, heads)
    rep = torch.zeros(layers * heads)
    rep[clusters.representatives] = 1.0
    rows = grid_rows("cluster", grid) + grid_rows("representative", rep.reshape(layers, heads))
    artifact = ArtifactIn("head_similarity.json", "head_similarity", str(path), "application/json")
    return rows, artifact, len(set(clusters.labels))


def taxonomy_job(ctx: JobContext) -> RunOutput:
    t_start = time.perf_counter()
    cfg = ctx.config_as(TaxonomyConfig)
    model = ctx.model()
    pairs = ctx.pairs()[: cfg.max_prompts]  # read and re-checked for this model once
    with input_errors():
        batch = build_pair_batch(model, pairs)
    try:
        tb = taxonomy_batch(model, pairs, batch)
    except NeedleError as exc:
        raise JobError(str(exc)) from None
    if int(tb.lengths.max()) <= cfg.sink + cfg.window:
        raise JobError(
            f"every prompt is at most {int(tb.lengths.max())} tokens, within the sink + window of "
            f"{cfg.sink + cfg.window}, so streaming changes nothing; lower --window or use "
            "longer prompts"
        )
    layers, heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    cost: dict[str, dict[str, float]] = {}

    def stage(name: str, t0: float, forward_prompts: int) -> None:
        cost[name] = {"forward_prompts": forward_prompts, "wall_s": time.perf_counter() - t0}

    t0 = time.perf_counter()
    ctx.progress(0.02, f"patterns and activations of {tb.n_prompts} prompts")
    try:
        totals = probe_all(model, tb, cfg.span_coverage, cfg.sink_threshold,
                           lambda f, m: ctx.progress(0.02 + 0.18 * f, m))  # fmt: skip
    except NotFinite as exc:
        raise JobError(str(exc)) from None
    rows, summary = _probe_rows(totals, cfg)
    stage("patterns, retrieval, spans, sinks, norms", t0, tb.n_prompts)
    t0 = time.perf_counter()
    sim_rows, artifact, n_clusters = _similarity(ctx, totals, (layers, heads), cfg.clusters)
    rows += sim_rows
    stage("head similarity", t0, 0)

    t0 = time.perf_counter()
    ctx.progress(0.22, "RazorAttention: echo and induction scores")
    razor = _razor(model, cfg)
    for name, grid in razor.items():
        rows += grid_rows(name, grid)
    stage("echo and induction scores", t0, cfg.repeated_sequences)

    t0 = time.perf_counter()
    try:
        check_streaming_exact(
            model, tb.select([0]).tokens.to(model.cfg.device), cfg.sink, cfg.window
        )
    except StreamingNotExact as exc:
        raise JobError(str(exc)) from None
    dev = head_deviation(model, tb, cfg.sink, cfg.window,
                         lambda f, m: ctx.progress(0.25 + 0.4 * f, m))  # fmt: skip
    stage("streaming each head", t0, dev.n_forward_prompts)
    rows += grid_rows("streaming_kl", dev.kl)
    rows += grid_rows("streaming_loss_delta", dev.loss_delta)
    rows += grid_rows("streaming_logit_diff_delta", dev.logit_diff_delta)
    if dev.needle_accuracy_delta is not None:
        rows += grid_rows("streaming_needle_delta", dev.needle_accuracy_delta)
    duo = _duo_score(dev, cfg.ranking)
    duo_cls = _classes(model, duo, cfg.streaming_fraction, low_streams=True)
    razor_cls = 1 - _classes(model, razor["razor_score"], cfg.streaming_fraction, low_streams=True)
    rows += grid_rows("streaming_head", duo_cls)
    rows += grid_rows("razor_retrieval", razor_cls)

    t0 = time.perf_counter()
    curve = kv_curve(
        model, tb, {"duo": duo, "razor": razor["razor_score"]}, cfg.kv_points, cfg.kv_seeds,
        cfg.sink, cfg.window, lambda f, m: ctx.progress(0.65 + 0.33 * f, m),
    )  # fmt: skip
    stage("KV-cache curve", t0, curve["n_forward_prompts"])
    ctx.progress(1.0, "done")
    summary.update(
        n_prompts=tb.n_prompts,
        needle_prompts=[
            {"depth": d, "context": c} for d, c in zip(tb.depth, tb.context, strict=True)
        ],
        streaming={"sink": cfg.sink, "window": cfg.window, "ranking": cfg.ranking,
                   "affected_positions": dev.affected_positions,
                   "streaming_fraction": cfg.streaming_fraction},
        agreement=_agreement(duo, razor["razor_score"], duo_cls, razor_cls),
        kv_curve=curve,
        clusters=n_clusters,
        cost=cost,
        n_forward=sum(int(c["forward_prompts"]) for c in cost.values()),
        wall_s=time.perf_counter() - t_start,
    )  # fmt: skip
    return RunOutput(head_results=rows, artifacts=[artifact], summary=summary)
