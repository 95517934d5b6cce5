"""Training attention-output SAEs with sae-lens on ``hook_z`` of a TransformerBridge.

sae-lens' ``LanguageModelSAETrainingRunner`` does run on a TransformerBridge (passed as
``override_model`` with a tokenised ``datasets.Dataset`` as ``override_dataset``; checked in
``bench/sae.py``), but it reports its training curves only to Weights & Biases and cannot read
from zoo generators or prompt sets. So headlab drives sae-lens' own ``SAETrainer`` through its
public seams (``step``, ``maybe_reset_sparsity``, ``set_final_sae_metadata`` — the same ones
sae-lens' ``MultiSAETrainer`` uses) with its own activation stream (``ActivationStream``): one
model forward per batch feeds the SAEs of all requested layers, and every ``log_every`` steps the
curve records MSE, L0, dead-feature fraction and explained variance of the current batch.

Each trained SAE is written in sae-lens' inference on-disk format (``cfg.json`` +
``sae_weights.safetensors``, via ``save_inference_model``) and reloaded from there with
``analysis.sae.load``, so what a run returns is exactly what a user loads later. The config's
metadata records the hook name, the model spec and ``n_heads``/``d_head``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from sae_lens import (
    LoggingConfig,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.sae import SAE, TrainingSAE, TrainStepOutput
from sae_lens.training.sae_trainer import SAETrainer

from analysis import hooks
from analysis.sae.activations import ActivationStream, TokenSource
from analysis.sae.load import load_sae_folder

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters of one training run (shared by all layers trained together)."""

    d_sae: int = 256
    architecture: Literal["standard", "topk"] = "topk"
    l1_coefficient: float = 1.0  # standard SAEs only
    k: int = 8  # topk SAEs only
    lr: float = 3e-3
    training_tokens: int = 200_000
    batch_tokens: int = 1024
    seqs_per_forward: int = 32
    context_size: int = 64
    log_every: int = 10
    dead_window_tokens: int = 50_000
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return max(1, self.training_tokens // self.batch_tokens)


@dataclass
class TrainingCurve:
    step: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    dead_fraction: list[float] = field(default_factory=list)
    explained_variance: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[float] | list[int]]:
        return {
            "step": self.step,
            "tokens": self.tokens,
            "mse": self.mse,
            "l0": self.l0,
            "dead_fraction": self.dead_fraction,
            "explained_variance": self.explained_variance,
        }


@dataclass
class TrainedSAE:
    layer: int
    sae: SAE[Any]  # the inference SAE, reloaded from ``folder``
    folder: Path
    curve: TrainingCurve


@dataclass
class TrainResult:
    saes: dict[int, TrainedSAE]
    tokens: int
    wall_s: float
    activation_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.wall_s, 1e-9)


def build_training_sae(
    d_in: int, layer: int, settings: TrainSettings, model_spec: str, n_heads: int
) -> TrainingSAE[Any]:
    """A fresh sae-lens training SAE for ``hook_z`` of ``layer`` (d_in = n_heads * d_head)."""
    common: dict[str, Any] = {
        "d_in": d_in,
        "d_sae": settings.d_sae,
        "reshape_activations": "hook_z",
        "normalize_activations": "none",
        "apply_b_dec_to_input": True,
    }
    if settings.architecture == "topk":
        cfg: Any = TopKTrainingSAEConfig(k=settings.k, **common)
        sae: TrainingSAE[Any] = TopKTrainingSAE(cfg)
    else:
        cfg = StandardTrainingSAEConfig(l1_coefficient=settings.l1_coefficient, **common)
        sae = StandardTrainingSAE(cfg)
    meta = sae.cfg.metadata
    meta.hook_name = hooks.z(layer).name
    meta.model_name = model_spec
    meta.context_size = settings.context_size
    meta.prepend_bos = True
    meta.n_heads = n_heads
    meta.d_head = d_in // n_heads
    return sae


def _trainer_for(sae: TrainingSAE[Any], settings: TrainSettings) -> SAETrainer[Any, Any]:
    steps = settings.total_steps
    cfg = SAETrainerConfig(
        total_training_samples=steps * settings.batch_tokens,
        train_batch_size_samples=settings.batch_tokens,
        lr=settings.lr,
        lr_end=settings.lr,
        lr_scheduler_name="constant",
        device=str(sae.W_dec.device),
        # dead = no firing in the last window (at most a fifth of the run, so short runs see it)
        dead_feature_window=max(
            1,
            min(settings.dead_window_tokens, settings.training_tokens // 5)
            // settings.batch_tokens,
        ),
        # one sparsity window over the whole run: its statistics go into the saved metadata
        feature_sampling_window=steps + 1,
        logger=LoggingConfig(log_to_wandb=False),
    )
    return SAETrainer(cfg=cfg, sae=sae, data_provider=iter(()))


@torch.no_grad()
def _record(curve: TrainingCurve, trainer: SAETrainer[Any, Any], out: TrainStepOutput) -> None:
    x, recon = out.sae_in.float(), out.sae_out.float()
    sq_err = (recon - x).pow(2).sum(-1)
    variance = (x - x.mean(0)).pow(2).sum(-1)
    curve.step.append(trainer.n_training_steps)
    curve.tokens.append(trainer.n_training_samples)
    curve.mse.append(float(sq_err.mean() / x.shape[-1]))
    curve.l0.append(float((out.feature_acts > 0).float().sum(-1).mean()))
    curve.dead_fraction.append(float(trainer.dead_neurons.float().mean()))
    curve.explained_variance.append(float(1 - sq_err.mean() / variance.mean().clamp_min(1e-12)))


def train_attention_saes(
    model: TransformerBridge,
    source: TokenSource,
    layers: Sequence[int],
    settings: TrainSettings,
    out_dir: Path,
    *,
    model_spec: str = "",
    progress: Progress | None = None,
) -> TrainResult:
    """Train one ``hook_z`` SAE per layer in lockstep on one activation stream.

    Returns the reloaded inference SAEs (saved under ``out_dir/L{layer}``) and their curves.
    ``progress(fraction, message)`` is called every ``log_every`` steps; it may raise to cancel.
    """
    n_heads, d_head = model.cfg.n_heads, model.cfg.d_head
    bad = [layer for layer in layers if not 0 <= layer < model.cfg.n_layers]
    if bad or not layers:
        raise ValueError(
            f"layers {list(layers)} must be non-empty and within 0..{model.cfg.n_layers - 1}"
        )
    torch.manual_seed(settings.seed)
    device = next(model.parameters()).device
    saes = {
        layer: build_training_sae(n_heads * d_head, layer, settings, model_spec, n_heads).to(device)
        for layer in layers
    }
    trainers = {layer: _trainer_for(sae, settings) for layer, sae in saes.items()}
    curves = {layer: TrainingCurve() for layer in layers}
    stream = ActivationStream(
        model,
        source,
        layers,
        settings.batch_tokens,
        seqs_per_forward=settings.seqs_per_forward,
        seed=settings.seed,
    )
    start, activation_s = time.perf_counter(), 0.0
    for step in range(settings.total_steps):
        t0 = time.perf_counter()
        batch = next(stream)
        activation_s += time.perf_counter() - t0
        log_now = step % settings.log_every == 0 or step == settings.total_steps - 1
        for layer, trainer in trainers.items():
            out = trainer.step(batch[layer])
            if log_now:
                _record(curves[layer], trainer, out)
            trainer.n_training_steps += 1
        if log_now and progress is not None:
            progress((step + 1) / settings.total_steps, f"SAE step {step + 1}")
    wall_s = time.perf_counter() - start
    result: dict[int, TrainedSAE] = {}
    for layer, trainer in trainers.items():
        trainer.set_final_sae_metadata()
        folder = out_dir / f"L{layer}"
        saes[layer].save_inference_model(folder)
        loaded = load_sae_folder(folder, model=model, device=str(device))
        result[layer] = TrainedSAE(layer, loaded, folder, curves[layer])
    tokens = settings.total_steps * settings.batch_tokens
    log.info("trained %d SAE(s) on %d tokens in %.1fs", len(layers), tokens, wall_s)
    return TrainResult(result, tokens, wall_s, activation_s)
