"""Per-head attention statistics and head-type scores.

Attention-pattern summaries (per prompt over its real positions, then averaged over prompts):

- ``entropy``: mean over query positions of -sum_k p log p (nats);
- ``mean_distance``: mean over query positions of sum_k p[q, k] (q - k);
- ``bos_mass``: mean attention on position 0 over query positions >= 1 (attention sinks /
  dormant heads put most of their mass there);
- ``local_mass``: mean attention on the ``LOCAL_WINDOW`` keys q-LOCAL_WINDOW+1..q, excluding
  position 0 — high for local heads, low for global ones.

Head-type scores, exactly ``transformer_lens.head_detector.detect_head`` with its defaults
(``error_measure="mul"``, BOS and current token included): per prompt
``sum(pattern * detection) / sum(pattern)`` over the prompt's [q, k] pattern, averaged over
prompts, with the detection patterns of previous-token (k = q-1), duplicate-token (k < q with
the same token) and induction (k-1 < q-1 with token[k-1] == token[q]) heads.

Weight-based scores (no prompts):

- ``ov_copying_score`` (Elhage et al. 2021): sum(eig) / sum(|eig|) of the head's full OV circuit
  W_E W_V W_O W_U, computed on the equal-spectrum d_head x d_head matrix W_O W_U W_E W_V.
  Near +1: the head copies the attended token; near -1: it suppresses it (copy suppression).
- ``successor_score`` (Gould et al. 2023): over ordinal tokens found in the vocabulary
  (digits, letters, weekdays, months), the fraction whose OV-circuit logits, restricted to the
  same sequence, rank the token's successor highest. No rows if the vocabulary has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

from analysis.hooks import HookSite

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

LOCAL_WINDOW = 3
ORDINAL_SEQUENCES: tuple[tuple[str, ...], ...] = (
    tuple(str(i) for i in range(10)),
    tuple("abcdefghijklmnopqrstuvwxyz"),
    ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    ("January", "February", "March", "April", "May", "June", "July", "August", "September",
     "October", "November", "December"),
)  # fmt: skip


def detection_patterns(tokens: Int[torch.Tensor, " pos"]) -> dict[str, torch.Tensor]:
    """detect_head's previous-token, duplicate-token and induction patterns [q, k]."""
    n = tokens.shape[0]
    prev = torch.zeros(n, n)
    prev[1:, :-1] = torch.eye(n - 1)
    same = (tokens[:, None] == tokens[None, :]).float().cpu()
    dup = torch.tril(same) - torch.eye(n)
    induction = torch.zeros(n, n)
    induction[:, 1:] = dup[:, :-1]
    return {
        "prev_token_score": prev,
        "duplicate_token_score": dup.clamp(min=0),
        "induction_score": torch.tril(induction),
    }


def pattern_statistics(
    pattern: Float[torch.Tensor, "layer head q k"], tokens: Int[torch.Tensor, " pos"]
) -> dict[str, Float[torch.Tensor, "layer head"]]:
    """All per-prompt scores of one prompt's real-length patterns."""
    p = pattern.float().cpu()
    n = p.shape[-1]
    q = torch.arange(n)
    dist = (q[:, None] - q[None, :]).clamp(min=0).float()
    out = {
        "entropy": -(p * p.clamp(min=1e-30).log()).sum(-1).mean(-1),
        "mean_distance": (p * dist).sum(-1).mean(-1),
    }
    if n > 1:
        out["bos_mass"] = p[..., 1:, 0].mean(-1)
        local = ((dist < LOCAL_WINDOW) & (q[None, :] > 0)).float()
        out["local_mass"] = (p * local)[..., 1:, :].sum(-1).mean(-1)
    for name, det in detection_patterns(tokens).items():
        out[name] = (p * det).sum((-1, -2)) / p.sum((-1, -2))
    return out


def prompt_patterns(
    model: TransformerBridge, tokens: Int[torch.Tensor, "batch pos"], lengths: Sequence[int]
) -> list[Float[torch.Tensor, "layer head q k"]]:
    """Clean attention patterns of each prompt, cut to its real length."""
    names = [HookSite("pattern", layer).name for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    stacked = torch.stack([cache[n] for n in names], dim=1)  # [batch, layer, head, q, k]
    if not torch.isfinite(stacked).all():
        raise ValueError("NaN or inf in the attention patterns; check the model's weights/dtype")
    return [stacked[i, :, :, :n, :n].cpu() for i, n in enumerate(lengths)]


def average_statistics(
    patterns: Sequence[torch.Tensor], tokens: Int[torch.Tensor, "batch pos"]
) -> dict[str, Float[torch.Tensor, "layer head"]]:
    """Each statistic averaged over prompts."""
    per_prompt = [pattern_statistics(p, tokens[i, : p.shape[-1]]) for i, p in enumerate(patterns)]
    names = set.intersection(*(set(s) for s in per_prompt))
    return {k: torch.stack([s[k] for s in per_prompt if k in s]).mean(0) for k in sorted(names)}


def _expanded_ov(model: TransformerBridge) -> tuple[torch.Tensor, torch.Tensor]:
    w_v, w_o = model.W_V.float(), model.W_O.float()
    if w_v.shape[1] != w_o.shape[1]:  # GQA: each query head reads its key/value head
        w_v = w_v.repeat_interleave(w_o.shape[1] // w_v.shape[1], dim=1)
    return w_v, w_o


def ov_copying_scores(model: TransformerBridge) -> Float[torch.Tensor, "layer head"]:
    """sum(eigenvalues) / sum(|eigenvalues|) of each head's full OV circuit."""
    with torch.no_grad():
        w_v, w_o = _expanded_ov(model)
        unembed_embed = model.W_U.float() @ model.W_E.float()  # [d_model, d_model]
        reduced = w_o @ unembed_embed @ w_v  # [layer, head, d_head, d_head]
        eig = torch.linalg.eigvals(reduced.double())
    return (eig.sum(-1).real / eig.abs().sum(-1).clamp(min=1e-30)).float()


def ordinal_token_sequences(model: TransformerBridge) -> list[list[int]]:
    """Ordinal sequences (>= 3 members) whose members are single tokens of the model."""
    if getattr(model, "tokenizer", None) is None:
        return []
    found = []
    for seq in ORDINAL_SEQUENCES:
        for prefix in ("", " "):
            ids = [model.to_tokens(prefix + w, prepend_bos=False)[0] for w in seq]
            if all(t.numel() == 1 for t in ids):
                flat = [int(t) for t in ids]
                unk = getattr(model.tokenizer, "unk_token_id", None)
                if len(set(flat)) == len(flat) and unk not in flat:  # unknown words map to unk
                    found.append(flat)
    return [s for s in found if len(s) >= 3]


def successor_scores(model: TransformerBridge) -> Float[torch.Tensor, "layer head"] | None:
    """Fraction of ordinal tokens whose OV logits (within their sequence) peak at the successor."""
    seqs = ordinal_token_sequences(model)
    if not seqs:
        return None
    with torch.no_grad():
        w_v, w_o = _expanded_ov(model)
        ov = w_v @ w_o  # [layer, head, d_model, d_model]
        hits: Any = 0  # becomes a [layer, head] tensor
        total = 0
        for seq in seqs:
            ids = torch.as_tensor(seq, device=model.W_E.device)
            logits = model.W_E.float()[ids] @ ov @ model.W_U.float()[:, ids]  # [L, H, n, n]
            top = logits[..., :-1, :].argmax(-1)  # each member but the last
            want = torch.arange(1, len(seq), device=top.device)
            hits = hits + (top == want).float().sum(-1)
            total += len(seq) - 1
    return (hits / total).cpu()
