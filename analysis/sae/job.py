"""Jobs of the SAE run kinds: ``sae-train``, ``sae-eval`` and ``sae-circuit``.

Each job builds its inputs from the config (token source, SAEs), calls the analysis functions of
``analysis.sae`` and returns a ``RunOutput``; bad input becomes a ``JobError`` with the reason.
Evaluation tokens are held out from training: a fresh generator seed for ``zoo``/``repeat``, the
last tenth of the windows for ``text``. A prompt set is too small to split, so ``prompts``
evaluates on the prompts it trained on (the summary says so).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sae_lens.saes.sae import SAE

from analysis.jobs import JobContext, JobError
from analysis.sae.activations import (
    FixedTokens,
    PromptTokens,
    RepeatedTokens,
    TextFileTokens,
    TokenBatch,
    TokenSource,
    TokenSourceError,
    ZooTaskTokens,
    collect_tokens,
)
from analysis.sae.load import SAELoadError, load_sae_folder, load_sae_pretrained, sae_layer
from analysis.sae.report import analyse_saes
from analysis.sae.sae_circuit import CodeSettings, HeadCodes, head_codes
from analysis.sae.train import TrainSettings, train_attention_saes
from storage.errors import CorruptArtifact
from storage.records import RunOutput, RunStatus

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

INPUT_ERRORS = (TokenSourceError, SAELoadError, ValueError)


def resolve_layers(layers: list[int], n_layers: int) -> list[int]:
    """Layer indices with negatives counted from the end; errors name the bad index."""
    out = []
    for layer in layers:
        resolved = layer + n_layers if layer < 0 else layer
        if not 0 <= resolved < n_layers:
            raise JobError(f"layer {layer} does not exist: the model has layers 0..{n_layers - 1}")
        out.append(resolved)
    return sorted(set(out))


def token_sources(
    ctx: JobContext, model: TransformerBridge
) -> tuple[TokenSource, TokenSource, bool]:
    """(training source, evaluation source, whether evaluation is held out) of the config."""
    cfg: Any = ctx.config
    name = cfg.source
    if name == "auto":
        name = "zoo" if cfg.model.startswith("zoo:") else "repeat"
    if name == "zoo":
        zoo = ZooTaskTokens.for_spec(cfg.model, model)
        return zoo, zoo, True
    if name == "repeat":
        source = RepeatedTokens.for_model(model, cfg.context_size)
        return source, source, True
    if cfg.source == "text":
        windows = TextFileTokens(model, ctx.local_file(cfg.text_path) or "", cfg.context_size)
        return _split_windows(windows)
    prompts = PromptTokens(model, ctx.pairs())
    return prompts, prompts, False


def _split_windows(windows: FixedTokens) -> tuple[FixedTokens, FixedTokens, bool]:
    n = windows.tokens.shape[0]
    if n < 2:
        return windows, windows, False
    cut = n - max(1, n // 10)
    train = FixedTokens(windows.tokens[:cut], windows.mask[:cut], windows.label)
    held = FixedTokens(windows.tokens[cut:], windows.mask[cut:], windows.label + " (held out)")
    return train, held, True


def _eval_tokens(source: TokenSource, n_tokens: int, seed: int) -> TokenBatch:
    return collect_tokens(source, n_tokens, seed=seed + 10_007)


def _train_settings(cfg: Any) -> TrainSettings:
    return TrainSettings(
        d_sae=cfg.d_sae,
        architecture=cfg.architecture,
        l1_coefficient=cfg.l1_coefficient,
        k=cfg.k,
        lr=cfg.lr,
        training_tokens=cfg.training_tokens,
        batch_tokens=cfg.batch_tokens,
        context_size=cfg.context_size,
        seed=cfg.seed,
    )


def sae_train_job(ctx: JobContext) -> RunOutput:
    cfg: Any = ctx.config
    model = ctx.model()
    torch.manual_seed(cfg.seed)
    layers = resolve_layers(cfg.layers, model.cfg.n_layers)
    try:
        train_src, eval_src, held_out = token_sources(ctx, model)
        result = train_attention_saes(
            model,
            train_src,
            layers,
            _train_settings(cfg),
            ctx.workdir / "trained",
            model_spec=cfg.model,
            progress=lambda f, m: ctx.progress(0.8 * f, m),
        )
        tokens = _eval_tokens(eval_src, cfg.eval_tokens, cfg.seed)
    except INPUT_ERRORS as exc:
        raise JobError(str(exc)) from None
    saes = {layer: trained.sae for layer, trained in result.saes.items()}
    report = analyse_saes(
        model,
        saes,
        tokens,
        ctx.workdir,
        n_top=cfg.top_contexts,
        dfa_contexts=cfg.dfa_contexts,
        progress=lambda f, m: ctx.progress(0.8 + 0.2 * f, m),
    )
    curves = {str(layer): t.curve.as_dict() for layer, t in result.saes.items()}
    summary = {
        **report.summary(),
        "training_curve": curves[str(layers[0])],
        "training_curves": curves,
        "layers": layers,
        "token_source": train_src.describe(),
        "eval_held_out": held_out,
        "n_training_tokens": result.tokens,
        "training_tokens_per_s": result.tokens_per_s,
        "training_wall_s": result.wall_s,
    }
    return RunOutput(head_results=report.head_results, artifacts=report.artifacts, summary=summary)


def sae_from_run(
    ctx: JobContext, model: TransformerBridge, run_id: int, layer: int | None
) -> SAE[Any]:
    """The SAE of a finished ``sae-train``/``sae-eval`` run, copied out of the store and loaded."""
    run = ctx.store.get_run(run_id)
    if run.kind not in ("sae-train", "sae-eval") or run.status != RunStatus.FINISHED:
        raise JobError(f"run {run_id} is a {run.status} {run.kind} run, not a finished SAE run")
    if run.model_spec != ctx.config.model:
        raise JobError(
            f"run {run_id} trained its SAE on {run.model_spec}, not {ctx.config.model}; "
            f"pass --model {run.model_spec}"
        )
    try:
        files = {
            a.name: ctx.store.verify_artifact(a).path
            for a in ctx.store.artifacts(run_id)
            if a.name.startswith("sae/L")
        }
    except CorruptArtifact as exc:
        raise JobError(str(exc)) from None
    layers = sorted({int(name.split("/")[1][1:]) for name in files})
    if not layers:
        raise JobError(f"run {run_id} stores no SAE weights")
    chosen = layers[0] if layer is None else layer
    if chosen not in layers:
        raise JobError(f"run {run_id} has SAEs for layers {layers}, not {chosen}")
    folder = ctx.workdir / "loaded" / f"L{chosen}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("cfg.json", "sae_weights.safetensors"):
        shutil.copyfile(files[f"sae/L{chosen}/{name}"], folder / name)
    return load_sae_folder(folder, model=model, device=str(next(model.parameters()).device))


def _load_eval_sae(ctx: JobContext, model: TransformerBridge) -> SAE[Any]:
    cfg: Any = ctx.config
    device = str(next(model.parameters()).device)
    if cfg.sae_run is not None:
        return sae_from_run(ctx, model, cfg.sae_run, cfg.sae_layer)
    if cfg.sae_path:
        return load_sae_folder(Path(cfg.sae_path), model=model, device=device)
    return load_sae_pretrained(cfg.sae_release, cfg.sae_id, model=model, device=device)


def sae_eval_job(ctx: JobContext) -> RunOutput:
    cfg: Any = ctx.config
    model = ctx.model()
    try:
        sae = _load_eval_sae(ctx, model)
        _, eval_src, held_out = token_sources(ctx, model)
        tokens = _eval_tokens(eval_src, cfg.eval_tokens, cfg.seed)
    except INPUT_ERRORS as exc:
        raise JobError(str(exc)) from None
    layer = sae_layer(sae)
    report = analyse_saes(
        model,
        {layer: sae},
        tokens,
        ctx.workdir,
        n_top=cfg.top_contexts,
        dfa_contexts=cfg.dfa_contexts,
        progress=ctx.progress,
    )
    summary = {**report.summary(), "layers": [layer], "token_source": eval_src.describe()}
    summary["eval_held_out"] = held_out
    return RunOutput(head_results=report.head_results, artifacts=report.artifacts, summary=summary)


def sae_circuit_job(ctx: JobContext) -> RunOutput:
    from analysis.circuits.ground_truth import GroundTruthError, choose_ground_truth
    from analysis.prompt_batch import PromptBatchError, build_pair_batch
    from analysis.sae.circuit_eval import evaluate_head_circuit

    cfg: Any = ctx.config
    model = ctx.model()
    try:
        batch = build_pair_batch(model, ctx.pairs())
        choice = choose_ground_truth(ctx.local_file(cfg.ground_truth), cfg.model, ctx.task())
    except (PromptBatchError, GroundTruthError) as exc:
        raise JobError(str(exc)) from None
    settings = CodeSettings(
        n_codes=cfg.n_codes,
        k=cfg.k,
        steps=cfg.steps,
        lr=cfg.lr,
        position=cfg.position,
        threshold=cfg.threshold,
        seed=cfg.seed,
    )
    start = time.perf_counter()
    codes = head_codes(model, batch, settings, progress=lambda f, m: ctx.progress(0.8 * f, m))
    wall_s = time.perf_counter() - start
    scores = {f"a{c.layer}.h{c.head}": c.score for c in codes}
    chosen = {name for name, score in scores.items() if score >= settings.threshold}
    ctx.progress(0.85, "evaluating the circuit")
    try:
        nodes, edges, summary = evaluate_head_circuit(
            model,
            batch,
            scores,
            chosen,
            metric=cfg.metric,
            ablation=cfg.ablation,
            truth=choice.truth,
        )
    except GroundTruthError as exc:
        raise JobError(str(exc)) from None
    summary |= {
        "method": "sae-codes",
        "level": "node",
        "wall_s": wall_s,
        "n_pairs": batch.n_pairs,
        "n_nodes_in_circuit": len(chosen),
        "circuit_heads": sorted(chosen),
        "codes": {f"a{c.layer}.h{c.head}": _code_counts(c) for c in codes},
        "ground_truth": choice.summary(),
    }
    return RunOutput(nodes=nodes, edges=edges, summary=summary)


def _code_counts(codes: HeadCodes) -> dict[str, dict[str, int]]:
    def counts(t: torch.Tensor) -> dict[str, int]:
        values, n = torch.unique(t, return_counts=True)
        return {str(int(v)): int(c) for v, c in zip(values.tolist(), n.tolist(), strict=True)}

    return {"positive": counts(codes.positive), "negative": counts(codes.negative)}
