"""The OV–unembed lens: which tokens a head's output promotes when it attends to token ``s``.

For source token ``s`` and head (l, h) the lens' logits over target tokens are

    logits[s] = norm_f( norm_1(W_E[s]) · W_V[l, h] W_O[l, h] ) · W_U

with both norms applied as TransformerLens' ``apply_ln_to_stack`` applies a norm: centring
(LayerNorm only) and a division by a **measured mean scale** — ``norm_1`` by the mean ``ln1``
scale of layer l, ``norm_f`` by the mean ``ln_final`` scale, both over every real position of
the run's prompts (``LensActivations``). Biases (``b_V W_O``, ``b_O``) are left out: they do not
depend on the source. So ``logits = (W_E · OV · W_U) / (σ_1 σ_f)`` after centring: TransformerLens'
full OV circuit ``W_E @ model.OV @ W_U`` divided by two positive constants. The per-source
ranking of targets (top promoted, top suppressed, the copy score) does not depend on the scales
at all; only the logit values and the average over sources do.

Sources: the whole vocabulary (special tokens left out) when it has at most
``full_vocab_limit`` tokens; otherwise only the tokens of the prompt set. Either way the
matrix is built in chunks of sources (``decode.MAX_LOGITS``), never whole. Per head it yields
the average over sources of the logits (its top promoted and suppressed tokens), each prompt
token's top promoted and suppressed tokens, and the copy score: the fraction of sources whose
top promoted token is the source itself.

The OV lens KL reads the head's own attention on each prompt: at query q the lens' logits are
``Σ_k A[q, k] logits[token_k]`` (``LensActivations.ov_z``), the head's output had the residual
stream at every key held only its token; KL(model ‖ softmax(those logits)) averaged over
positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int

from analysis.heads import _expanded_ov
from analysis.lens.activations import LensActivations
from analysis.lens.decode import cached_norm, rows_per_chunk, scan_heads, top_k

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


@dataclass(frozen=True)
class TopTokens:
    """Top promoted (largest logits) and top suppressed (smallest) tokens, ``[..., k]``."""

    top_ids: Int[torch.Tensor, "... k"]
    top_logits: Float[torch.Tensor, "... k"]
    bottom_ids: Int[torch.Tensor, "... k"]
    bottom_logits: Float[torch.Tensor, "... k"]

    @classmethod
    def of(cls, logits: torch.Tensor, k: int) -> TopTokens:
        top, top_v = top_k(logits, k)
        bottom, bottom_v = top_k(logits, k, largest=False)
        return cls(top, top_v, bottom, bottom_v)

    @classmethod
    def stack(cls, parts: list[TopTokens], dim: int = 0) -> TopTokens:
        return cls(*(torch.stack([getattr(p, f) for p in parts], dim) for f in cls._fields()))

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("top_ids", "top_logits", "bottom_ids", "bottom_logits")

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.{f}": getattr(self, f).contiguous() for f in self._fields()}


@dataclass(frozen=True)
class OvLens:
    source_set: str  # "vocabulary" or "prompt tokens"
    n_sources: int
    mean: TopTokens  # [layer, head, k], average over the source set
    copy_score: Float[torch.Tensor, "layer head"]
    prompt_sources: Int[torch.Tensor, " source"]  # the prompt set's tokens
    per_source: TopTokens  # [layer, head, source, k]
    prompt_mean: TopTokens  # [layer, head, k]
    prompt_copy_score: Float[torch.Tensor, "layer head"]


def special_ids(model: TransformerBridge) -> set[int]:
    tok = getattr(model, "tokenizer", None)
    return {int(i) for i in getattr(tok, "all_special_ids", None) or []}


def prompt_sources(model: TransformerBridge, act: LensActivations) -> Int[torch.Tensor, " s"]:
    """The distinct tokens of the prompts, special tokens left out, in id order."""
    seen = {t for seq in act.tokens for t in seq} - special_ids(model)
    return torch.tensor(sorted(seen), dtype=torch.long)


def ov_logits(
    model: TransformerBridge, layer: int, sources: Int[torch.Tensor, " s"],
    ln1_scale: float, final_scale: float,
) -> Float[torch.Tensor, "head s d_vocab"]:  # fmt: skip
    """The OV lens' logits of every head of ``layer`` for the given source tokens."""
    w_v, w_o = _expanded_ov(model)
    w_e = model.W_E.detach().float()[sources.to(model.W_E.device)]
    embed = cached_norm(model, w_e, ln1_scale)
    out = torch.einsum("sm,hmd,hdn->hsn", embed, w_v[layer], w_o[layer])
    return cached_norm(model, out, final_scale) @ model.W_U.detach().float()


@dataclass
class _Scan:
    """What one pass over a source set accumulates for a layer's heads."""

    total: torch.Tensor  # [head, d_vocab] sum of logits
    hits: torch.Tensor  # [head] sources whose top promoted token is themselves
    rows: list[TopTokens]  # per-source top tokens, per chunk (when kept)


@torch.no_grad()
def _scan_layer(
    model: TransformerBridge, act: LensActivations, layer: int, sources: torch.Tensor, k: int,
    keep_rows: bool,
) -> _Scan:  # fmt: skip
    heads, vocab = int(model.cfg.n_heads), int(model.cfg.d_vocab_out)
    scan = _Scan(torch.zeros(heads, vocab), torch.zeros(heads), [])
    step = rows_per_chunk(vocab, heads)
    for start in range(0, len(sources), step):
        chunk = sources[start : start + step]
        logits = ov_logits(
            model, layer, chunk, float(act.ln1_scale[layer]), act.final_scale_mean
        ).cpu()
        scan.total += logits.sum(1)
        scan.hits += (logits.argmax(-1) == chunk[None]).float().sum(1)
        if keep_rows:
            scan.rows.append(TopTokens.of(logits, k))
    return scan


def _mean_and_copy(scans: list[_Scan], n: int, k: int) -> tuple[TopTokens, torch.Tensor]:
    mean = torch.stack([s.total for s in scans]) / max(n, 1)  # [layer, head, vocab]
    return TopTokens.of(mean, k), torch.stack([s.hits for s in scans]) / max(n, 1)


def ov_lens(
    model: TransformerBridge, act: LensActivations, k: int, full_vocab_limit: int,
    progress: Callable[[float, str], None] = lambda f, m: None,
) -> OvLens:  # fmt: skip
    """The OV lens of every head (module docstring)."""
    n_layers, vocab = int(model.cfg.n_layers), int(model.cfg.d_vocab)
    prompt = prompt_sources(model, act)
    full = vocab <= full_vocab_limit
    prompt_scans, vocab_scans = [], []
    everything = torch.tensor(sorted(set(range(vocab)) - special_ids(model)), dtype=torch.long)
    for layer in range(n_layers):
        progress(layer / n_layers, f"OV lens, layer {layer}")
        prompt_scans.append(_scan_layer(model, act, layer, prompt, k, keep_rows=True))
        if full:
            vocab_scans.append(_scan_layer(model, act, layer, everything, k, keep_rows=False))
    prompt_mean, prompt_copy = _mean_and_copy(prompt_scans, len(prompt), k)
    per_layer = [
        TopTokens(*(torch.cat([getattr(r, f) for r in s.rows], 1) for f in TopTokens._fields()))
        for s in prompt_scans
    ]
    per_source = TopTokens.stack(per_layer)
    if full:
        mean, copy = _mean_and_copy(vocab_scans, len(everything), k)
        return OvLens("vocabulary", len(everything), mean, copy, prompt, per_source,
                      prompt_mean, prompt_copy)  # fmt: skip
    return OvLens("prompt tokens", len(prompt), prompt_mean, prompt_copy, prompt, per_source,
                  prompt_mean, prompt_copy)  # fmt: skip


def ov_lens_kl(model: TransformerBridge, act: LensActivations) -> Float[torch.Tensor, "layer head"]:
    """Mean KL(model ‖ OV lens) over the positions of ``act``, per head."""
    _, w_o = _expanded_ov(model)
    w_u = model.W_U.detach().float()

    def outputs(layer: int, rows: slice) -> torch.Tensor:
        z = act.ov_z[rows, layer].to(w_o.device) / float(act.ln1_scale[layer])
        return torch.einsum("nhd,hdm->hnm", z, w_o[layer])

    def decoder(x: torch.Tensor, rows: slice) -> torch.Tensor:
        return cached_norm(model, x, act.final_scale_mean) @ w_u

    return scan_heads(model, act.log_probs, outputs, decoder).kl
