"""Circuit heads from discretised SAE codes (O'Neill & Bui 2024, "Sparse Autoencoders Enable
Scalable and Reliable Circuit Identification in Language Models").

Positive prompts are prompts where the model can predict the answer (the clean prompts of a
prompt set); negative prompts are minimally changed so that it cannot (the corrupted prompts).
For every attention head, a small sae-lens TopK SAE (``n_codes`` features, ``k`` active) is
trained on that head's output ``z`` (hook_z, ``d_head`` wide) over positive and negative
examples together. Each example is discretised to one integer code: the index of its most active
feature (``-1`` when none fires). A head engaged in the task computes something on positives that
it never computes on negatives, so its positive codes fall outside the set of negative codes:

    score(head) = fraction of positive examples whose code occurs in no negative example.

Heads scoring at least ``threshold`` form the circuit. Examples are taken at each prompt's last
real position (where the answer is predicted) by default, or at every real position.
``circuit_eval`` turns the head scores into nodes and edges of the circuit engine's graph and
scores them with the engine's own faithfulness and ROC evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float, Int
from sae_lens import LoggingConfig, TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.config import SAETrainerConfig
from sae_lens.training.sae_trainer import SAETrainer

from analysis.prompt_batch import PairBatch
from analysis.sae.activations import hook_z

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

Position = Literal["last", "all"]


@dataclass(frozen=True)
class CodeSettings:
    n_codes: int = 16
    k: int = 1
    steps: int = 300
    lr: float = 1e-2
    position: Position = "last"
    threshold: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class HeadCodes:
    layer: int
    head: int
    positive: Int[torch.Tensor, " n_pos"]
    negative: Int[torch.Tensor, " n_neg"]
    score: float


def head_examples(
    model: TransformerBridge, batch: PairBatch, position: Position
) -> tuple[
    Float[torch.Tensor, "n_pos layer head d_head"], Float[torch.Tensor, "n_neg layer head d_head"]
]:
    """hook_z of every head on positive (clean) and negative (corrupted) examples."""
    layers = list(range(model.cfg.n_layers))
    n_pos = batch.clean.shape[1]
    real = torch.arange(n_pos, device=batch.lengths.device)[None, :] < batch.lengths[:, None]
    if position == "last":
        real = torch.zeros_like(real)
        real[torch.arange(batch.n_pairs), batch.last] = True
    out = []
    for tokens in (batch.clean, batch.corrupted):
        zs = hook_z(model, tokens, layers)
        stacked = torch.stack([zs[layer] for layer in layers], dim=2)  # batch pos layer head d
        out.append(stacked[real.to(stacked.device)].float().cpu())
    return out[0], out[1]


def train_code_sae(x: Float[torch.Tensor, "n d_head"], settings: CodeSettings) -> TopKTrainingSAE:
    """A TopK SAE fitted (full batch) to one head's examples with sae-lens' SAETrainer."""
    torch.manual_seed(settings.seed)
    cfg = TopKTrainingSAEConfig(d_in=x.shape[1], d_sae=settings.n_codes, k=settings.k)
    sae = TopKTrainingSAE(cfg)
    trainer = SAETrainer(
        cfg=SAETrainerConfig(
            total_training_samples=settings.steps * x.shape[0],
            train_batch_size_samples=x.shape[0],
            lr=settings.lr,
            lr_end=settings.lr,
            dead_feature_window=settings.steps + 1,
            feature_sampling_window=settings.steps + 1,
            logger=LoggingConfig(log_to_wandb=False),
        ),
        sae=sae,
        data_provider=iter(()),
    )
    for _ in range(settings.steps):
        trainer.step(x)
        trainer.n_training_steps += 1
    return sae.eval()


@torch.no_grad()
def discretise(sae: TopKTrainingSAE, x: Float[torch.Tensor, "n d_head"]) -> Int[torch.Tensor, " n"]:
    """Each example's code: the index of its most active feature, or -1 when none fires."""
    acts = sae.encode(x)
    if acts.is_sparse:
        acts = acts.to_dense()
    value, index = acts.max(-1)
    return torch.where(value > 0, index, torch.full_like(index, -1))


def unique_positive_fraction(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Fraction of positive codes that occur in no negative example."""
    seen = torch.isin(positive, negative)
    return float((~seen).float().mean())


def head_codes(
    model: TransformerBridge,
    batch: PairBatch,
    settings: CodeSettings,
    progress: Callable[[float, str], None] | None = None,
) -> list[HeadCodes]:
    """Codes and score of every head (layer-major order)."""
    pos, neg = head_examples(model, batch, settings.position)
    n_layers, n_heads = pos.shape[1], pos.shape[2]
    results = []
    for layer in range(n_layers):
        for head in range(n_heads):
            x = torch.cat([pos[:, layer, head], neg[:, layer, head]])
            sae = train_code_sae(x, settings)
            codes = discretise(sae, x)
            p_codes, n_codes = codes[: len(pos)], codes[len(pos) :]
            score = unique_positive_fraction(p_codes, n_codes)
            results.append(HeadCodes(layer, head, p_codes, n_codes, score))
            if progress is not None:
                done = layer * n_heads + head + 1
                progress(done / (n_layers * n_heads), f"head {layer}.{head}: score {score:.2f}")
    return results
