"""A trained linear lens per head (Attention Lens, Sakarvadia et al. 2023).

Each head (l, h) gets an affine map into the residual stream, ``x ↦ x W[l, h] + b[l, h]``
(``d_model → d_model``), applied to the head's output ``x = z @ W_O`` at a position and decoded
by the model's own final norm and unembedding with the norm's own scale:
``unembed(ln_final(x W + b))`` (``decode.fresh_norm_logits``). It starts at ``W = I, b = 0`` and
is trained with Adam to minimise KL(model ‖ lens), the model's own next-token distribution at
that position against the lens', over random minibatches of positions (the same positions for
every head; heads are independent, so training them together equals training each alone).
Deterministic for a seed on one device. Weights are saved as safetensors (``weight``
``[layer, head, d_model, d_model]``, ``bias`` ``[layer, head, d_model]``, float32).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file

from analysis.lens.activations import LensActivations
from analysis.lens.decode import HeadScan, fresh_norm_logits, kl_to_model, scan_heads
from analysis.lens.logit_lens import head_outputs

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

# logits held at once in a training step (heads × positions × vocab), with their gradients
MAX_TRAIN_LOGITS = 1 << 24
CURVE_POINTS = 100


@dataclass(frozen=True)
class TrainedLens:
    weight: Float[torch.Tensor, "layer head d_model d_model"]
    bias: Float[torch.Tensor, "layer head d_model"]
    curve_step: list[int]
    curve_kl: list[float]  # minibatch KL, mean over heads


def _lens_outputs(model, act: LensActivations, weight, bias, layer: int, rows) -> torch.Tensor:
    x = head_outputs(model, act, layer, rows)  # [head, rows, d_model]
    return torch.einsum("hnm,hmk->hnk", x, weight[layer]) + bias[layer][:, None]


def train_lens(
    model: TransformerBridge, act: LensActivations, steps: int, batch: int, lr: float,
    seed: int, progress: Callable[[float, str], None] = lambda f, m: None,
) -> TrainedLens:  # fmt: skip
    """Train one linear lens per head on the positions of ``act`` (module docstring)."""
    n_layers, n_heads, d = int(model.cfg.n_layers), int(model.cfg.n_heads), int(model.cfg.d_model)
    device = model.W_U.device
    weight = torch.eye(d, device=device).repeat(n_layers, n_heads, 1, 1).requires_grad_()
    bias = torch.zeros(n_layers, n_heads, d, device=device, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    every = max(1, steps // CURVE_POINTS)
    curve_step, curve_kl = [], []
    for step in range(steps):
        rows = torch.randint(0, act.n, (min(batch, act.n),), generator=gen)
        log_p = act.log_probs[rows].to(device)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for layer in range(n_layers):
            logits = fresh_norm_logits(model, _lens_outputs(model, act, weight, bias, layer, rows))
            loss = kl_to_model(log_p[None], logits).mean(-1).sum()
            loss.backward()
            total += float(loss.detach())
        opt.step()
        if step % every == 0 or step == steps - 1:
            curve_step.append(step)
            curve_kl.append(total / (n_layers * n_heads))
            progress((step + 1) / steps, f"lens training step {step + 1}/{steps}")
    return TrainedLens(weight.detach().cpu(), bias.detach().cpu(), curve_step, curve_kl)


def lens_scan(
    model: TransformerBridge, act: LensActivations, weight: torch.Tensor, bias: torch.Tensor,
    k: int | None,
) -> HeadScan:  # fmt: skip
    """The trained lens read at every position of ``act``: KL per head, top-k per position."""
    device = model.W_U.device
    weight, bias = weight.to(device), bias.to(device)
    return scan_heads(
        model, act.log_probs,
        lambda layer, rows: _lens_outputs(model, act, weight, bias, layer, rows),
        lambda x, rows: fresh_norm_logits(model, x), k,
    )  # fmt: skip


def save_lens(path: Path, lens: TrainedLens, meta: dict[str, str]) -> None:
    tensors = {"weight": lens.weight.contiguous(), "bias": lens.bias.contiguous()}
    save_file(tensors, str(path), metadata=meta)


def load_lens(path: Path | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a saved lens."""
    tensors = load_file(str(path))
    return tensors["weight"], tensors["bias"]


def identity_lens(model: TransformerBridge) -> tuple[torch.Tensor, torch.Tensor]:
    """The untrained lens (``W = I, b = 0``): the head's output through a fresh final norm."""
    n_layers, n_heads, d = int(model.cfg.n_layers), int(model.cfg.n_heads), int(model.cfg.d_model)
    return torch.eye(d).repeat(n_layers, n_heads, 1, 1), torch.zeros(n_layers, n_heads, d)
