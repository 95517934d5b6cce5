"""Jobs of the run kinds ``heads``, ``dla``, ``patch`` and ``ablate``.

Each job loads the model and prompt pairs from its context, runs the analysis (reporting
progress, which also lets the user cancel), and returns every per-head row, artifact and
summary value at once in a ``RunOutput``. Bad input (undefined metric, positions past a
prompt's end, missing or observation-only hooks, NaN/inf activations) becomes a ``JobError``
with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from analysis import heads as head_stats
from analysis.ablation import ablate_heads
from analysis.configs.heads import AblateConfig, DlaConfig, HeadsConfig, PatchConfig
from analysis.dla import direct_logit_attribution
from analysis.hooks import IneffectiveHook, MissingHook, require_effective_hook
from analysis.jobs import JobContext, JobError, grid_rows
from analysis.metrics import MetricUndefined
from analysis.patching.attribution import attribution_patch_z, pearson
from analysis.patching.exact import ActivationNotFinite, exact_patch, prepare
from analysis.patching.fast import fast_patch
from analysis.patching.replay import BlockReplay
from analysis.patching.strategies import PatchTarget
from analysis.prompt_batch import PairBatch, PromptBatchError, build_pair_batch
from storage.records import ArtifactIn, HeadResultIn, RunOutput

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


@contextmanager
def input_errors() -> Iterator[None]:
    """Turn the analysis' bad-input exceptions into JobError with the same message."""
    bad_input = (MetricUndefined, PromptBatchError, ActivationNotFinite, MissingHook,
                 IneffectiveHook)  # fmt: skip
    try:
        yield
    except bad_input as exc:
        raise JobError(str(exc)) from None


def _pair_batch(ctx: JobContext, model: TransformerBridge, max_pairs: int) -> PairBatch:
    pairs = ctx.pairs()[:max_pairs]
    with input_errors():
        return build_pair_batch(model, pairs)


# --- heads ---------------------------------------------------------------------------------


def repeated_sequences(model: TransformerBridge, n: int, half: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    tok = getattr(model, "tokenizer", None)
    special = {getattr(tok, a, None) for a in ("bos_token_id", "pad_token_id", "eos_token_id")}
    allowed = torch.as_tensor([t for t in range(int(model.cfg.d_vocab)) if t not in special])
    bos = getattr(tok, "bos_token_id", None) if model.cfg.default_prepend_bos else None
    out = []
    for _ in range(n):
        seq = allowed[torch.randint(0, len(allowed), (half,), generator=g)].tolist()
        out.append(([bos] if bos is not None else []) + seq + seq)
    return out


def _heads_prompts(ctx: JobContext, model: TransformerBridge) -> list[list[int]]:
    cfg = ctx.config_as(HeadsConfig)
    prompts: list[list[int]] = []
    if cfg.prompt_set is not None:
        batch = _pair_batch(ctx, model, cfg.max_prompts)
        prompts += [batch.clean[i, :n].tolist() for i, n in enumerate(batch.lengths.tolist())]
    prompts += repeated_sequences(model, cfg.repeated_sequences, cfg.repeat_length, cfg.seed)
    if not prompts:
        raise JobError("no prompts: pass --prompts NAME and/or --repeated-sequences N")
    too_long = [i for i, p in enumerate(prompts) if len(p) > int(model.cfg.n_ctx)]
    if too_long:
        raise JobError(f"prompts {too_long} exceed the context of {model.cfg.n_ctx} tokens")
    return prompts


def _save_patterns(
    ctx: JobContext, model: TransformerBridge, patterns, prompts
) -> list[ArtifactIn]:
    tensors = {f"prompt{i}": p.to(torch.float16).contiguous() for i, p in enumerate(patterns)}
    pat_path, tok_path = ctx.workdir / "patterns.safetensors", ctx.workdir / "tokens.json"
    save_file(tensors, str(pat_path))
    if getattr(model, "tokenizer", None) is not None:
        strs = [model.to_str_tokens(torch.as_tensor(p)) for p in prompts]
    else:
        strs = [[str(t) for t in p] for p in prompts]
    tok_path.write_text(json.dumps({"prompts": strs}))
    return [
        ArtifactIn("patterns.safetensors", "patterns", str(pat_path)),
        ArtifactIn("tokens.json", "tokens", str(tok_path), "application/json"),
    ]


def heads_job(ctx: JobContext) -> RunOutput:
    t0 = time.perf_counter()
    model = ctx.model()
    prompts = _heads_prompts(ctx, model)
    ctx.progress(0.05, f"attention patterns of {len(prompts)} prompts")
    patterns = []
    for i, p in enumerate(prompts):
        tokens = torch.as_tensor([p], device=model.cfg.device)
        with input_errors():
            patterns += head_stats.prompt_patterns(model, tokens, [len(p)])
        ctx.progress(0.05 + 0.7 * (i + 1) / len(prompts), f"prompt {i + 1}/{len(prompts)}")
    token_rows = [torch.as_tensor(p) for p in prompts]
    per_prompt = [
        head_stats.pattern_statistics(pat, t) for pat, t in zip(patterns, token_rows, strict=True)
    ]
    rows: list[HeadResultIn] = []
    for name in sorted(set.intersection(*(set(s) for s in per_prompt))):
        rows += grid_rows(name, torch.stack([s[name] for s in per_prompt]).mean(0))
    ctx.progress(0.8, "OV-circuit scores")
    rows += grid_rows("ov_copying_score", head_stats.ov_copying_scores(model))
    successor = head_stats.successor_scores(model)
    if successor is not None:
        rows += grid_rows("successor_score", successor)
    artifacts = (
        _save_patterns(ctx, model, patterns, prompts)
        if ctx.config_as(HeadsConfig).save_patterns
        else []
    )
    ctx.progress(1.0, "done")
    summary = {"n_prompts": len(prompts), "n_forward": len(prompts),
               "wall_s": time.perf_counter() - t0}  # fmt: skip
    return RunOutput(head_results=rows, artifacts=artifacts, summary=summary)


# --- dla -----------------------------------------------------------------------------------


def dla_job(ctx: JobContext) -> RunOutput:
    t0 = time.perf_counter()
    model = ctx.model()
    cfg = ctx.config_as(DlaConfig)
    batch = _pair_batch(ctx, model, cfg.max_pairs)
    ctx.progress(0.1, "direct logit attribution")
    try:
        result = direct_logit_attribution(model, batch)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    rows = grid_rows("dla", result.heads.mean(-1))
    layer_parts = {"dla_mlp": result.mlps, "logit_lens": result.logit_lens}
    for metric, values in layer_parts.items():
        if values is not None:
            rows += [HeadResultIn(metric, i, None, float(v.mean())) for i, v in enumerate(values)]
    rows.append(HeadResultIn("dla_embed", 0, None, float(result.embed.mean())))
    if result.pos_embed is not None:
        rows.append(HeadResultIn("dla_pos_embed", 0, None, float(result.pos_embed.mean())))
    rows.append(HeadResultIn("dla_biases", 0, None, float(result.biases.mean())))  # b_O, b_U
    if cfg.per_prompt:
        for b in range(batch.n_pairs):
            rows += grid_rows("dla", result.heads[:, :, b], prompt=b)
            if result.mlps is not None:
                rows += [HeadResultIn("dla_mlp", i, None, float(v[b]), prompt=b)
                         for i, v in enumerate(result.mlps)]  # fmt: skip
    ctx.progress(1.0, "done")
    summary = {
        "metric_clean": float(result.logit_lens[-1].mean()),
        "n_forward": 1,
        "wall_s": time.perf_counter() - t0,
        "logit_lens_note": f"layer {model.cfg.n_layers} is the final residual stream",
    }
    return RunOutput(head_results=rows, summary=summary)


# --- patch ---------------------------------------------------------------------------------


def _targets(cfg: Any) -> list[PatchTarget]:
    modes = {"all": [False], "each": [True], "both": [False, True]}[cfg.positions]
    out = []
    for site in cfg.sites:
        if site == "resid":
            out.append(PatchTarget("resid_pre", True))
        else:
            out += [PatchTarget(site, per_pos) for per_pos in modes]
    return out


def _check_positions(batch: PairBatch, positions: list[int]) -> list[int] | None:
    if not positions:
        return None
    for p in positions:
        short = [i for i, n in enumerate(batch.lengths.tolist()) if not 0 <= p < n]
        if short:
            n = int(batch.lengths[short[0]])
            raise JobError(
                f"position {p} is beyond prompt {short[0]}'s length of {n} tokens "
                f"(positions are 0..{n - 1}); choose positions inside every prompt"
            )
    return sorted(set(positions))


def _metric_name(model: TransformerBridge, target: PatchTarget) -> str:
    kv = getattr(model.cfg, "n_key_value_heads", None)
    name = target.metric_name
    if target.kind in ("k", "v") and kv and int(kv) != int(model.cfg.n_heads):
        name = name.replace(f"patch_{target.kind}", f"patch_{target.kind}_kv")  # per KV head
    return name


def _patch_rows(model: TransformerBridge, target: PatchTarget, result) -> list[HeadResultIn]:
    name = _metric_name(model, target)
    rows = []
    for layer in range(result.normalised.shape[0]):
        for j, variant in enumerate(result.variants):
            head, pos = target.head_and_position(variant)
            value = float(result.normalised[layer, j])
            rows.append(HeadResultIn(name, layer, head, value, position=pos))
    return rows


def _replay_mode(replay: BlockReplay) -> str:
    """How the fast path ran: prefix skip, replay from the patched layer, or full forwards."""
    if not replay.supported:
        return f"full forwards ({replay.reason})"
    suffix = replay.suffix()
    if suffix.supported:
        return "from patched layer, positions from the patch on"
    return f"from patched layer ({suffix.reason})"


def patch_job(ctx: JobContext) -> RunOutput:
    t0, cfg = time.perf_counter(), ctx.config_as(PatchConfig)
    model = ctx.model()
    batch = _pair_batch(ctx, model, cfg.max_pairs)
    positions = _check_positions(batch, cfg.only_positions)
    targets = _targets(cfg)
    with input_errors():
        setup = prepare(model, batch, cfg.metric, cfg.direction)
        for t in targets:
            require_effective_hook(model, t.site(0), batch.clean[:1])
    replay = BlockReplay(model, setup.target_tokens, batch.last) if cfg.method == "fast" else None
    rows: list[HeadResultIn] = []
    summary: dict[str, Any] = {"metric_clean": setup.baseline.clean,
                               "metric_corrupt": setup.baseline.corrupt}  # fmt: skip
    z_all = None
    for i, t in enumerate(targets):
        stage = ctx.stage(0.05 + 0.85 * i / len(targets), 0.05 + 0.85 * (i + 1) / len(targets))
        with input_errors():
            if cfg.method == "fast":
                result = fast_patch(setup, t, positions, stage, replay=replay)
            else:
                result = exact_patch(setup, t, positions, stage)
        rows += _patch_rows(model, t, result)
        if t.kind == "z" and not t.per_position:
            z_all = result.normalised
    if cfg.attribution:
        ctx.progress(0.92, "attribution patching")
        with input_errors():
            attr = attribution_patch_z(setup)
        rows += grid_rows("attrib_z", attr)
        if z_all is None:
            with input_errors():
                z_all = fast_patch(setup, PatchTarget("z"), replay=replay).normalised
        summary["attribution_correlation"] = pearson(attr, z_all)
    if replay is not None:
        summary["replay"] = _replay_mode(replay)
    summary.update(n_pairs=batch.n_pairs, wall_s=time.perf_counter() - t0, method=cfg.method)
    ctx.progress(1.0, "done")
    return RunOutput(head_results=rows, summary=summary)


# --- ablate --------------------------------------------------------------------------------


def ablate_job(ctx: JobContext) -> RunOutput:
    t0, cfg = time.perf_counter(), ctx.config_as(AblateConfig)
    model = ctx.model()
    batch = _pair_batch(ctx, model, cfg.max_pairs)
    if "resample" in cfg.methods and batch.n_pairs < 2:
        raise JobError("resample ablation needs at least 2 pairs to resample from")
    rows: list[HeadResultIn] = []
    n = len(cfg.methods)
    for i, method in enumerate(cfg.methods):
        with input_errors():
            effect = ablate_heads(model, batch, method, cfg.metric, ctx.stage(i / n, (i + 1) / n))
        rows += grid_rows(f"ablate_{method}", effect)
    ctx.progress(1.0, "done")
    summary = {"effect": "m_ablated - m_clean", "metric": cfg.metric,
               "wall_s": time.perf_counter() - t0}  # fmt: skip
    return RunOutput(head_results=rows, summary=summary)
