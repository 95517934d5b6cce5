"""Evaluating an attention-output SAE on held-out tokens.

Reconstruction (over real, non-padding positions of flattened ``hook_z``):

- ``mse``: mean squared error per element; ``explained_variance``: ``1 - Σ‖x - x̂‖² / Σ‖x - x̄‖²``
  (one variance over all evaluated tokens, as sae-lens' ``metrics/explained_variance``);
- ``l0``: mean number of active features per token; per-feature ``frequency`` (fraction of tokens
  on which it fires), ``mean_act`` (mean over all tokens, zeros included) and ``max_act``;
- ``dead_fraction``: features that never fire; ``dense_fraction``: features firing on more than
  ``dense_threshold`` (default 10%) of tokens.

Splicing (next-token cross-entropy over positions whose token and successor are both real):
``loss_clean``; ``loss_sae`` with ``hook_z`` of the layer replaced by the SAE's reconstruction;
``loss_sae_error`` with reconstruction plus the error term ``x - x̂`` (so it equals the clean loss
up to float rounding — a check that the splice is wired right); ``loss_zero`` with ``hook_z``
zero-ablated. ``loss_recovered = (loss_zero - loss_sae) / (loss_zero - loss_clean)``; when the
zero ablation does not change the loss it is undefined and reported as None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Bool, Float, Int
from sae_lens.saes.sae import SAE

from analysis import hooks
from analysis.sae.activations import TokenBatch, flatten_heads, hook_z
from analysis.sae.load import sae_layer

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

SpliceMode = Literal["sae", "sae_error", "zero"]


@dataclass(frozen=True)
class SAEEvaluation:
    layer: int
    n_tokens: int
    mse: float
    explained_variance: float
    l0: float
    dead_fraction: float
    dense_fraction: float
    loss_clean: float
    loss_sae: float
    loss_sae_error: float
    loss_zero: float
    loss_recovered: float | None
    frequency: Float[torch.Tensor, " d_sae"]
    mean_act: Float[torch.Tensor, " d_sae"]
    max_act: Float[torch.Tensor, " d_sae"]

    def summary(self) -> dict[str, Any]:
        keys = [
            "layer",
            "n_tokens",
            "mse",
            "explained_variance",
            "l0",
            "dead_fraction",
            "dense_fraction",
            "loss_clean",
            "loss_sae",
            "loss_sae_error",
            "loss_zero",
            "loss_recovered",
        ]
        return {k: getattr(self, k) for k in keys}


@torch.no_grad()
def reconstruct(
    sae: SAE[Any], x: Float[torch.Tensor, "n d_in"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature activations [n, d_sae], reconstruction [n, d_in]) of flattened ``hook_z``."""
    acts = sae.encode(x)
    return acts, sae.decode(acts)


def splice_hook(sae: SAE[Any], mode: SpliceMode) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """A forward hook on ``hook_z`` that replaces it per ``mode``."""

    def hook(z: Float[torch.Tensor, "batch pos n_heads d_head"], hook: Any) -> torch.Tensor:
        if mode == "zero":
            return torch.zeros_like(z)
        flat = flatten_heads(z)
        _, recon = reconstruct(sae, flat)
        out = recon + (flat - recon) if mode == "sae_error" else recon
        return out.reshape(z.shape).to(z.dtype)

    return hook


def next_token_loss(
    logits: Float[torch.Tensor, "batch pos d_vocab"],
    tokens: Int[torch.Tensor, "batch pos"],
    mask: Bool[torch.Tensor, "batch pos"],
) -> tuple[float, int]:
    """(summed cross-entropy, count) over positions whose token and next token are real."""
    valid = (mask[:, :-1] & mask[:, 1:]).reshape(-1)
    logp = logits[:, :-1].log_softmax(-1).reshape(-1, logits.shape[-1])
    nll = -logp.gather(1, tokens[:, 1:].reshape(-1, 1)).squeeze(1)
    return float(nll[valid].double().sum()), int(valid.sum())


@torch.no_grad()
def spliced_losses(
    model: TransformerBridge, sae: SAE[Any], batch: TokenBatch
) -> dict[str, tuple[float, int]]:
    """Summed next-token loss and count of ``batch`` clean and with each splice of the SAE."""
    device = next(model.parameters()).device
    tokens, mask = batch.tokens.to(device), batch.mask.to(device)
    name = hooks.z(sae_layer(sae)).name
    out = {"clean": next_token_loss(model(tokens), tokens, mask)}
    for mode in ("sae", "sae_error", "zero"):
        logits = model.run_with_hooks(tokens, fwd_hooks=[(name, splice_hook(sae, mode))])
        out[mode] = next_token_loss(logits, tokens, mask)
    return out


class _Accumulator:
    """Running sums over tokens for reconstruction and sparsity statistics."""

    def __init__(self, d_in: int, d_sae: int) -> None:
        self.n = 0
        self.sq_err = 0.0
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.sum_x2 = 0.0
        self.active = 0.0
        self.fires = torch.zeros(d_sae, dtype=torch.float64)
        self.act_sum = torch.zeros(d_sae, dtype=torch.float64)
        self.act_max = torch.zeros(d_sae, dtype=torch.float64)

    def add(self, x: torch.Tensor, acts: torch.Tensor, recon: torch.Tensor) -> None:
        x, acts, recon = x.double().cpu(), acts.double().cpu(), recon.double().cpu()
        self.n += x.shape[0]
        self.sq_err += float((recon - x).pow(2).sum())
        self.sum_x += x.sum(0)
        self.sum_x2 += float(x.pow(2).sum())
        on = acts > 0
        self.active += float(on.sum())
        self.fires += on.sum(0)
        self.act_sum += acts.sum(0)
        if x.shape[0]:
            self.act_max = torch.maximum(self.act_max, acts.max(0).values)

    def variance(self) -> float:
        return self.sum_x2 - float(self.sum_x.pow(2).sum()) / max(self.n, 1)


def _loss_recovered(clean: float, sae: float, zero: float) -> float | None:
    denominator = zero - clean
    if abs(denominator) < 1e-6 * max(1.0, abs(clean)):
        return None
    return (zero - sae) / denominator


@torch.no_grad()
def evaluate_sae(
    model: TransformerBridge,
    sae: SAE[Any],
    tokens: TokenBatch,
    *,
    seqs_per_forward: int = 32,
    dense_threshold: float = 0.1,
) -> SAEEvaluation:
    """Reconstruction, sparsity and spliced-loss statistics of ``sae`` on ``tokens``."""
    layer = sae_layer(sae)
    acc = _Accumulator(sae.cfg.d_in, sae.cfg.d_sae)
    losses: dict[str, list[float]] = {k: [0.0, 0.0] for k in ("clean", "sae", "sae_error", "zero")}
    for start in range(0, tokens.tokens.shape[0], seqs_per_forward):
        batch = TokenBatch(
            tokens.tokens[start : start + seqs_per_forward],
            tokens.mask[start : start + seqs_per_forward],
        )
        z = hook_z(model, batch.tokens, [layer])[layer]
        x = flatten_heads(z)[batch.mask.to(z.device)]
        acts, recon = reconstruct(sae, x)
        acc.add(x, acts, recon)
        for key, (total, count) in spliced_losses(model, sae, batch).items():
            losses[key][0] += total
            losses[key][1] += count
    mean = {k: total / max(count, 1) for k, (total, count) in losses.items()}
    frequency = (acc.fires / max(acc.n, 1)).float()
    return SAEEvaluation(
        layer=layer,
        n_tokens=acc.n,
        mse=acc.sq_err / max(acc.n * sae.cfg.d_in, 1),
        explained_variance=1.0 - acc.sq_err / max(acc.variance(), 1e-12),
        l0=acc.active / max(acc.n, 1),
        dead_fraction=float((acc.fires == 0).double().mean()),
        dense_fraction=float((frequency > dense_threshold).double().mean()),
        loss_clean=mean["clean"],
        loss_sae=mean["sae"],
        loss_sae_error=mean["sae_error"],
        loss_zero=mean["zero"],
        loss_recovered=_loss_recovered(mean["clean"], mean["sae"], mean["zero"]),
        frequency=frequency,
        mean_act=(acc.act_sum / max(acc.n, 1)).float(),
        max_act=acc.act_max.float(),
    )
