"""Job of the run kind ``lens``: the attention lenses of every head, stored for the pages.

Per-head metrics (aggregate rows): ``ov_copy_score`` (fraction of the OV lens' sources whose top
promoted token is the source itself: the vocabulary when it is small, else the prompt set's
tokens), ``ov_prompt_copy_score`` (the same over the prompt set's tokens), ``ov_lens_kl`` and
``logit_lens_kl`` (the zero-training lenses' mean KL to the model's next-token distribution)
and, with ``--train``, ``lens_kl`` (the trained lens' on the sequences it was trained on) and
``lens_kl_heldout`` (on the lens data's last ``--heldout`` fraction of sequences, kept out of
training). The zero-training KLs are measured on all the lens data: the set's clean prompts, or
the text file's windows when ``--train-text`` names one; the summary's ``training.heldout``
holds every lens' mean KL on the held-out sequences.

Artifacts: ``lens.safetensors`` (the OV lens' average and per-source top promoted / suppressed
tokens; per prompt ``i`` the head logit lens' and the trained lens' top-k tokens at every
position, ``[layer, head, position, k]``), ``tokens.json`` (the prompts' tokens, their ids
and the text of every token id the lens file names) and, with ``--train``,
``lens_weights.safetensors``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from analysis.configs.lens import LensConfig
from analysis.jobs import JobContext, JobError, grid_rows
from analysis.lens.activations import LensActivations, LensInputError, collect
from analysis.lens.decode import HeadScan
from analysis.lens.logit_lens import logit_lens
from analysis.lens.ov import OvLens, ov_lens, ov_lens_kl
from analysis.lens.trained import lens_scan, save_lens, train_lens
from analysis.prompts.files import printable
from analysis.sae.activations import FixedTokens, PromptTokens, TextFileTokens, TokenSourceError
from storage.records import ArtifactIn, HeadResultIn, RunOutput

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

LENS_FILE, TOKENS_FILE, WEIGHTS_FILE = "lens.safetensors", "tokens.json", "lens_weights.safetensors"
DEFAULT_WINDOW = 128  # tokens per text window when the config names none (at most n_ctx)
OV_APPROXIMATION = (
    "W_E[s] centred (LayerNorm) and divided by the layer's mean ln1 scale, through W_V W_O "
    "(no biases), centred and divided by the mean ln_final scale, then W_U"
)


def constant_kl(act: LensActivations) -> float:
    """Mean KL(model ‖ q) of the best constant distribution q (the mean of the model's): what a
    lens that ignores the head reaches."""
    mean = act.log_probs.exp().mean(0).clamp(min=1e-30).log()
    return float((act.log_probs.exp() * (act.log_probs - mean)).sum(-1).mean())


def _per_prompt(scan: HeadScan, act: LensActivations, prefix: str) -> dict[str, torch.Tensor]:
    assert scan.ids is not None and scan.probs is not None and scan.logits is not None
    out = {}
    for i in range(len(act.lengths)):
        rows = act.rows_of(i)
        for name, values in (("ids", scan.ids), ("probs", scan.probs), ("logits", scan.logits)):
            out[f"{prefix}.prompt{i}.{name}"] = values[rows].permute(1, 2, 0, 3).contiguous()
    return out


def _ov_tensors(ov: OvLens) -> dict[str, torch.Tensor]:
    return {
        **ov.mean.tensors("ov.mean"),
        **ov.prompt_mean.tensors("ov.prompt_mean"),
        **ov.per_source.tensors("ov.source"),
        "ov.sources": ov.prompt_sources.to(torch.int32),
    }


def _token_texts(model: TransformerBridge, tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    ids = sorted({int(t) for k, v in tensors.items() if k.endswith(("ids", "sources"))
                  for t in v.flatten().tolist()})  # fmt: skip
    if not ids:
        return {}
    texts = model.to_str_tokens(torch.tensor(ids))
    return {str(i): str(t) for i, t in zip(ids, texts, strict=True)}


def _lens_data(ctx: JobContext, model, cfg: LensConfig, prompts) -> tuple[Any, str]:
    """The sequences the lenses are trained and scored on: the prompts, or the text's windows."""
    if cfg.train_text is None:
        return prompts, f"the prompt set's {prompts.tokens.shape[0]} clean prompts"
    path = Path(ctx.local_file(cfg.train_text) or "")
    n_ctx = int(model.cfg.n_ctx)
    width = cfg.text_window or min(n_ctx, DEFAULT_WINDOW)
    if not path.is_file():
        raise JobError(f"train_text: no file {printable(str(path))}; pass an existing file")
    if width > n_ctx:
        raise JobError(f"text_window: {width} exceeds the model's context of {n_ctx}; lower it")
    try:
        text = TextFileTokens(model, path, width)
    except TokenSourceError as exc:
        raise JobError(
            f"train_text: {str(exc).replace('--context-size', '--text-window')}"
        ) from None
    n = min(cfg.text_windows, text.tokens.shape[0])
    windows = FixedTokens(text.tokens[:n], text.mask[:n], text.label)
    return windows, f"{n} windows of {width} tokens of the text file"


@dataclass
class _Results:
    """What the job stores, gathered stage by stage."""

    kls: dict[str, torch.Tensor] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    artifacts: list[ArtifactIn] = field(default_factory=list)
    cost: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] | None = None

    def stage(self, name: str, t0: float) -> None:
        self.cost[name] = time.perf_counter() - t0


def heldout_split(n: int, fraction: float) -> tuple[list[int], list[int]]:
    """(training, held-out) sequence indices: the last ``round(fraction * n)`` sequences are
    held out (at least one when ``fraction > 0`` and ``n >= 2``, never all)."""
    held = min(n - 1, max(1, round(fraction * n))) if fraction > 0 and n >= 2 else 0
    return list(range(n - held)), list(range(n - held, n))


def _trained(ctx: JobContext, model, cfg: LensConfig, data, prompt_act, out: _Results) -> None:
    """Train the lens on ``data`` less its held-out sequences; its KL on both parts, its top
    tokens on the prompts, its file."""
    t0 = time.perf_counter()
    ctx.progress(0.45, "training a linear lens per head")
    train_idx, held_idx = heldout_split(len(data.lengths), cfg.heldout)
    train = data.subset(train_idx) if held_idx else data
    lens = train_lens(
        model, train, cfg.train_steps, cfg.train_batch, cfg.train_lr, cfg.seed,
        lambda f, m: ctx.progress(0.45 + 0.4 * f, m),
    )  # fmt: skip
    out.stage("lens training", t0)
    t0 = time.perf_counter()
    shown = lens_scan(model, prompt_act, lens.weight, lens.bias, cfg.top_k)
    out.kls["lens_kl"] = lens_scan(model, train, lens.weight, lens.bias, None).kl
    out.tensors |= _per_prompt(shown, prompt_act, "trained_lens")
    heldout = None
    if held_idx:
        held = data.subset(held_idx)
        out.kls["lens_kl_heldout"] = lens_scan(model, held, lens.weight, lens.bias, None).kl
        heldout = {
            "sequences": len(held_idx), "positions": held.n,
            "mean_kl": {
                "lens_kl": float(out.kls["lens_kl_heldout"].mean()),
                "logit_lens_kl": float(logit_lens(model, held, None).kl.mean()),
                "ov_lens_kl": float(ov_lens_kl(model, held).mean()),
            },
            "constant_kl": constant_kl(held),
        }  # fmt: skip
    path = ctx.workdir / WEIGHTS_FILE
    meta = {
        "decoder": "unembed(ln_final(x @ weight + bias)), x = z @ W_O",
        "steps": str(cfg.train_steps),
        "seed": str(cfg.seed),
        "model": cfg.model,
    }
    save_lens(path, lens, meta)
    out.artifacts.append(ArtifactIn(WEIGHTS_FILE, "lens_weights", str(path)))
    out.training = {
        "steps": cfg.train_steps,
        "batch": cfg.train_batch,
        "lr": cfg.train_lr,
        "seed": cfg.seed,
        "curve": {"step": lens.curve_step, "kl": lens.curve_kl},
        "sequences": len(train_idx),
        "positions": train.n,
        "heldout": heldout,
    }
    out.stage("trained lens read", t0)


def _zero_training(ctx: JobContext, model, cfg: LensConfig, data, prompt_act, out: _Results):
    """The OV lens and the head logit lens: their KLs on ``data``, their tokens on the prompts."""
    t0 = time.perf_counter()
    ov = ov_lens(model, prompt_act, cfg.top_k, cfg.full_vocab_limit,
                 lambda f, m: ctx.progress(0.05 + 0.2 * f, m))  # fmt: skip
    out.stage("OV lens", t0)
    t0 = time.perf_counter()
    ctx.progress(0.25, "zero-training lenses: KL to the model")
    shown = logit_lens(model, prompt_act, cfg.top_k)
    out.kls["ov_lens_kl"] = ov_lens_kl(model, data)
    out.kls["logit_lens_kl"] = shown.kl if data is prompt_act else logit_lens(model, data, None).kl
    out.tensors |= _ov_tensors(ov) | _per_prompt(shown, prompt_act, "logit_lens")
    out.stage("head logit lens and KLs", t0)
    return ov


def _write_files(ctx: JobContext, model, prompt_act, out: _Results, top_k: int) -> None:
    lens_path, tokens_path = ctx.workdir / LENS_FILE, ctx.workdir / TOKENS_FILE
    save_file(out.tensors, str(lens_path), metadata={"top_k": str(top_k)})
    prompts = [model.to_str_tokens(torch.tensor(t)) for t in prompt_act.tokens]
    vocab = _token_texts(model, out.tensors)
    ids = prompt_act.tokens
    tokens_path.write_text(json.dumps({"prompts": prompts, "prompt_ids": ids, "vocab": vocab}))
    out.artifacts += [
        ArtifactIn(LENS_FILE, "lens", str(lens_path)),
        ArtifactIn(TOKENS_FILE, "tokens", str(tokens_path), "application/json"),
    ]


def _top_heads(grid: torch.Tensor, n: int = 5, lowest: bool = False) -> list[dict[str, Any]]:
    order = torch.argsort(grid.flatten(), descending=not lowest, stable=True)[:n]
    heads = grid.shape[1]
    return [{"head": f"{int(i) // heads}.{int(i) % heads}", "value": float(grid.flatten()[i])}
            for i in order]  # fmt: skip


def _activations(ctx: JobContext, model, cfg: LensConfig):
    """(prompt activations, lens-data activations, its label, sequences run)."""
    try:
        prompts = PromptTokens(model, ctx.pairs()[: cfg.max_prompts], corrupted=False)
        source, label = _lens_data(ctx, model, cfg, prompts)
        ctx.progress(0.02, "activations of the prompts")
        prompt_act = collect(model, prompts.tokens, prompts.mask)
        data = prompt_act if source is prompts else collect(model, source.tokens, source.mask)
    except (TokenSourceError, LensInputError) as exc:
        raise JobError(str(exc)) from None
    n_forward = prompts.tokens.shape[0] + (0 if source is prompts else source.tokens.shape[0])
    return prompt_act, data, label, n_forward


def lens_job(ctx: JobContext) -> RunOutput:
    t_start = time.perf_counter()
    cfg = ctx.config_as(LensConfig)
    model = ctx.model()
    out = _Results()
    t0 = time.perf_counter()
    prompt_act, data, data_label, n_forward = _activations(ctx, model, cfg)
    out.stage("activations", t0)
    ov = _zero_training(ctx, model, cfg, data, prompt_act, out)
    if cfg.train:
        _trained(ctx, model, cfg, data, prompt_act, out)
    ctx.progress(0.95, "writing the lens artifacts")
    _write_files(ctx, model, prompt_act, out, cfg.top_k)
    rows: list[HeadResultIn] = grid_rows("ov_copy_score", ov.copy_score)
    rows += grid_rows("ov_prompt_copy_score", ov.prompt_copy_score)
    for name, grid in out.kls.items():
        rows += grid_rows(name, grid)
    ctx.progress(1.0, "done")
    summary = {
        "n_prompts": len(prompt_act.lengths),
        "top_k": cfg.top_k,
        "lens_data": data_label,
        "lens_positions": data.n,
        "ov": {
            "source_set": ov.source_set, "n_sources": ov.n_sources,
            "n_prompt_sources": len(ov.prompt_sources), "approximation": OV_APPROXIMATION,
            "ln1_scale": [float(s) for s in prompt_act.ln1_scale],
            "final_scale": prompt_act.final_scale_mean,
        },
        "copy_heads": _top_heads(ov.copy_score),
        "mean_kl": {name: float(grid.mean()) for name, grid in out.kls.items()},
        "best_kl_heads": {name: _top_heads(grid, lowest=True) for name, grid in out.kls.items()},
        "constant_kl": constant_kl(data),
        "training": out.training,
        "cost": out.cost,
        "n_forward": n_forward,
        "wall_s": time.perf_counter() - t_start,
    }  # fmt: skip
    return RunOutput(head_results=rows, artifacts=out.artifacts, summary=summary)
