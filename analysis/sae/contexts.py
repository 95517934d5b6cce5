"""Top-activating contexts of SAE features, and their direct feature attribution tables.

For each feature the ``k`` (sequence, position) pairs with the largest activation over the
evaluated tokens (real positions only) are kept. A context is a window of the sequence ending a
few tokens after the activating position (``after``) and starting at most ``max_prefix`` tokens
before it, with the feature's activation on every token of the window:
``{"tokens": [...], "acts": [...], "max": x, "pos": i, "sequence": s}`` where ``pos`` is the
activating token's index in the window. DFA rows (``sae_dfa.parquet``) use the same window
coordinates: ``source_pos`` indexes ``tokens`` of context number ``context`` of the feature.
Source positions before the window (only when the prefix was cut) are left out of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from jaxtyping import Float, Int
from sae_lens.saes.sae import SAE

from analysis.sae.activations import TokenBatch, flatten_heads, hook_z
from analysis.sae.attribution import direct_feature_attribution
from analysis.sae.evaluate import reconstruct

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


@dataclass(frozen=True)
class TopActivations:
    value: Float[torch.Tensor, "k d_sae"]  # descending; 0 where a feature fired fewer times
    seq: Int[torch.Tensor, "k d_sae"]
    pos: Int[torch.Tensor, "k d_sae"]


@torch.no_grad()
def feature_acts(
    model: TransformerBridge, sae: SAE[Any], layer: int, tokens: Int[torch.Tensor, "batch pos"]
) -> Float[torch.Tensor, "batch pos d_sae"]:
    z = flatten_heads(hook_z(model, tokens, [layer])[layer])
    acts, _ = reconstruct(sae, z.reshape(-1, z.shape[-1]))
    return acts.reshape(*z.shape[:2], -1).float().cpu()


@torch.no_grad()
def top_activations(
    model: TransformerBridge,
    sae: SAE[Any],
    layer: int,
    tokens: TokenBatch,
    k: int = 5,
    chunk: int = 32,
) -> TopActivations:
    """The ``k`` largest activations of every feature over the real positions of ``tokens``."""
    d_sae, width = sae.cfg.d_sae, tokens.tokens.shape[1]
    best_v = torch.full((0, d_sae), -1.0)
    best_i = torch.zeros((0, d_sae), dtype=torch.long)
    for start in range(0, tokens.tokens.shape[0], chunk):
        acts = feature_acts(model, sae, layer, tokens.tokens[start : start + chunk])
        acts = acts.masked_fill(~tokens.mask[start : start + chunk, :, None], -1.0)
        flat_index = torch.arange(start * width, start * width + acts.shape[0] * width)
        vals = torch.cat([best_v, acts.reshape(-1, d_sae)])
        idx = torch.cat([best_i, flat_index[:, None].expand(-1, d_sae)])
        top = vals.topk(min(k, vals.shape[0]), dim=0)
        best_v, best_i = top.values, idx.gather(0, top.indices)
    return TopActivations(best_v.clamp_min(0.0), best_i // width, best_i % width)


def _token_strings(model: TransformerBridge, ids: list[int]) -> list[str]:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return [str(i) for i in ids]
    return [tokenizer.decode([i]) for i in ids]


def _window(pos: int, length: int, max_prefix: int, after: int) -> tuple[int, int]:
    return max(0, pos - max_prefix + 1), min(length, pos + 1 + after)


@torch.no_grad()
def top_contexts(
    model: TransformerBridge,
    sae: SAE[Any],
    layer: int,
    tokens: TokenBatch,
    top: TopActivations,
    features: list[int],
    *,
    max_prefix: int = 48,
    after: int = 4,
) -> dict[int, list[dict[str, Any]]]:
    """Context windows (tokens, activations) of each feature's top activations."""
    out: dict[int, list[dict[str, Any]]] = {}
    seqs = sorted(
        {
            int(s)
            for f in features
            for s, v in zip(top.seq[:, f], top.value[:, f], strict=True)
            if v > 0
        }
    )
    acts = {}
    for start in range(0, len(seqs), 32):
        chunk = seqs[start : start + 32]
        for s, a in zip(chunk, feature_acts(model, sae, layer, tokens.tokens[chunk]), strict=True):
            acts[s] = a
    lengths = tokens.mask.sum(-1)
    for f in features:
        entries = []
        for s, p, v in zip(
            top.seq[:, f].tolist(), top.pos[:, f].tolist(), top.value[:, f], strict=True
        ):
            if v <= 0:
                continue
            lo, hi = _window(p, int(lengths[s]), max_prefix, after)
            ids = tokens.tokens[s, lo:hi].tolist()
            entries.append(
                {
                    "tokens": _token_strings(model, ids),
                    "acts": [round(float(a), 5) for a in acts[s][lo:hi, f]],
                    "max": float(v),
                    "pos": p - lo,
                    "sequence": s,
                }
            )
        out[f] = entries
    return out


@torch.no_grad()
def dfa_table(
    model: TransformerBridge,
    sae: SAE[Any],
    layer: int,
    tokens: TokenBatch,
    top: TopActivations,
    features: list[int],
    *,
    n_contexts: int = 3,
    max_prefix: int = 48,
    feature_offset: int = 0,
    chunk: int = 64,
) -> pd.DataFrame:
    """``sae_dfa.parquet`` rows for the first ``n_contexts`` top contexts of each feature."""
    jobs = [
        (f, c, int(top.seq[c, f]), int(top.pos[c, f]))
        for f in features
        for c in range(min(n_contexts, top.value.shape[0]))
        if top.value[c, f] > 0
    ]
    frames = []
    for start in range(0, len(jobs), chunk):
        part = jobs[start : start + chunk]
        seq = torch.tensor([j[2] for j in part])
        dst = torch.tensor([j[3] for j in part])
        feats = torch.tensor([j[0] for j in part])
        dfa = direct_feature_attribution(model, sae, layer, tokens.tokens[seq], dst, feats).cpu()
        for (f, c, _, p), grid in zip(part, dfa, strict=True):
            lo = max(0, p - max_prefix + 1)
            heads, src = torch.meshgrid(
                torch.arange(grid.shape[0]), torch.arange(lo, p + 1), indexing="ij"
            )
            frames.append(
                pd.DataFrame(
                    {
                        "feature": f + feature_offset,
                        "context": c,
                        "source_pos": (src - lo).reshape(-1).numpy(),
                        "layer": layer,
                        "head": heads.reshape(-1).numpy(),
                        "value": grid[:, lo : p + 1].reshape(-1).double().numpy(),
                    }
                )
            )
    columns = ["feature", "context", "source_pos", "layer", "head", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
