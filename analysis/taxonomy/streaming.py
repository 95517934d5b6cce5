"""Streaming attention (DuoAttention's sink + recent window) on chosen heads, and what it costs.

A streamed head keeps only the first ``sink`` keys and the ``window`` most recent ones
(q-window+1..q). Its pattern is the model's own pattern restricted to those keys and
renormalised, which is exactly softmax over the masked scores (the pattern hook edits it; the
other heads are untouched). ``forward_streamed`` runs the model with a per-prompt choice of
streamed heads; ``outcome`` reads, per prompt, what the taxonomy measures of the output:

- ``loss``: mean next-token cross-entropy over the prompt's real positions (nats);
- ``logit_diff``: correct - incorrect logit at the clean prompt's last position;
- ``needle_accuracy``: fraction of needle copy steps whose argmax is the needle token (NaN for
  prompts without a needle);
- ``kl``: KL(full || streamed) of the next-token distributions, summed over positions q >= sink
  + window (the only ones a streamed head can change), with ``kl_count`` positions.

``head_deviation`` streams one head at a time (the training-free DuoAttention score: heads whose
streaming changes the output least are streaming heads), batching the heads of a layer into one
forward per chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Float

from analysis.hooks import HookSite
from analysis.taxonomy.batch import TaxonomyBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

LOGIT_BUDGET = 40_000_000  # logits elements held at once (batch x pos x vocab)


def streaming_mask(n: int, sink: int, window: int) -> Bool[torch.Tensor, "q k"]:
    """Keys a streamed head keeps: k < sink or q - window < k <= q."""
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    return (k <= q) & ((k < sink) | (k > q - window))


def restrict(pattern: Float[torch.Tensor, "... q k"], keep: torch.Tensor) -> torch.Tensor:
    """The pattern restricted to ``keep`` and renormalised (= softmax of the masked scores)."""
    kept = pattern * keep
    return kept / kept.sum(-1, keepdim=True).clamp(min=1e-30)


StreamedHeads = dict[int, Bool[torch.Tensor, "batch head"]]  # layer -> which heads stream


def forward_streamed(
    model: TransformerBridge, tokens: torch.Tensor, streamed: StreamedHeads, sink: int, window: int
) -> Float[torch.Tensor, "batch pos vocab"]:
    """Logits with the chosen heads (per prompt) streaming.

    The bridge reports a layer's pattern to ``hook_pattern`` after computing attention in its
    own code (and after its attention output), so editing the pattern changes nothing.
    Instead the layer's pattern and values are read at their hooks, and the change of each
    chosen head's output, ``(restrict(pattern) - pattern) @ v @ W_O`` (exact, since a head's
    output is ``pattern @ v @ W_O``), is added where the block reads the attention's output
    after the pattern is known: the MLP's input (the bridge's ``resid_mid`` hook is the second
    norm's input; editing it does not reach the residual) and the block's output
    (``resid_post``). ``check_streaming_exact`` compares the result with a reference that
    edits ``z`` directly."""
    n = tokens.shape[1]
    keep = streaming_mask(n, sink, window).to(tokens.device)
    hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = []
    attn_only = bool(getattr(model.cfg, "attn_only", False))
    for layer, chosen in streamed.items():
        if not bool(chosen.any()):
            continue
        seen: dict[str, torch.Tensor] = {}
        w_o = model.W_O[layer].detach()  # [head, d_head, d_model]

        def grab(act: torch.Tensor, hook: object, key: str, seen: dict = seen) -> None:
            seen[key] = act

        def correct(out: torch.Tensor, hook: object, chosen=chosen, seen=seen, w_o=w_o):
            pattern, v = seen.pop("pattern"), seen.pop("v")  # [b, h, q, k], [b, k, kv, d]
            v = v.repeat_interleave(pattern.shape[1] // v.shape[2], dim=2)
            sel = chosen.to(out.device)[:, :, None, None]
            change = torch.where(sel, restrict(pattern, keep.to(pattern.dtype)) - pattern, 0.0)
            delta = torch.einsum("bhqk,bkhd,hdm->bqm", change, v, w_o.to(out.dtype))
            seen["delta"] = delta.to(out.dtype)
            return out + seen["delta"]

        def again(out: torch.Tensor, hook: object, seen=seen) -> torch.Tensor:
            return out + seen.pop("delta")

        hooks += [
            (HookSite("v", layer).name, lambda a, hook, g=grab: g(a, hook, "v")),
            (HookSite("pattern", layer).name, lambda a, hook, g=grab: g(a, hook, "pattern")),
        ]
        if not attn_only:
            hooks.append((HookSite("resid_mid", layer).name, correct))
        hooks.append((HookSite("resid_post", layer).name, again if not attn_only else correct))
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=hooks).float()


def z_from_pattern(
    model: TransformerBridge, tokens: torch.Tensor, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the layer's z, pattern @ v recomputed from its hooks): equal when the streaming
    replacement is exact for this model."""
    names = [HookSite(k, layer).name for k in ("z", "pattern", "v")]  # type: ignore[arg-type]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda x: x in names)
    z, pattern, v = (cache[x] for x in names)
    v = v.repeat_interleave(pattern.shape[1] // v.shape[2], dim=2)
    return z, torch.einsum("bhqk,bkhd->bqhd", pattern, v)


class StreamingNotExact(ValueError):
    """The streaming edit does not reproduce the reference on this model's architecture."""


def streamed_z_reference(
    model: TransformerBridge, tokens: torch.Tensor, layer: int, chosen: torch.Tensor,
    sink: int, window: int,
) -> torch.Tensor:  # fmt: skip
    """Logits with the chosen heads of ONE layer streaming, by editing their ``z``: the layer's
    pattern is the clean one (nothing upstream changes), restricted, times the values."""
    names = [HookSite(k, layer).name for k in ("pattern", "v")]  # type: ignore[arg-type]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda x: x in names)
    pattern, v = cache[names[0]], cache[names[1]]
    v = v.repeat_interleave(pattern.shape[1] // v.shape[2], dim=2)
    keep = streaming_mask(tokens.shape[1], sink, window).to(pattern.device, pattern.dtype)
    z_new = torch.einsum("bhqk,bkhd->bqhd", restrict(pattern, keep), v)
    sel = chosen.to(pattern.device)[:, None, :, None]

    def edit(z: torch.Tensor, hook: object) -> torch.Tensor:
        return torch.where(sel, z_new.to(z.dtype), z)

    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(HookSite("z", layer).name, edit)]).float()


def check_streaming_exact(
    model: TransformerBridge, tokens: torch.Tensor, sink: int, window: int, tol: float = 1e-3
) -> None:
    """Raise ``StreamingNotExact`` unless streaming every head of the first layer through
    ``forward_streamed`` matches ``streamed_z_reference`` (relative to the logits' scale)."""
    chosen = torch.ones(tokens.shape[0], int(model.cfg.n_heads), dtype=torch.bool)
    got = forward_streamed(model, tokens, {0: chosen}, sink, window)
    want = streamed_z_reference(model, tokens, 0, chosen, sink, window)
    err = float((got - want).abs().max()) / max(float(want.abs().max()), 1e-6)
    if err > tol:
        arch = getattr(model.cfg, "architecture", None) or type(model).__name__
        raise StreamingNotExact(
            f"streaming attention is not exact on this model ({arch}): relative error {err:.2e} "
            "against editing z; the taxonomy's streaming scores cannot run on it"
        )


@dataclass(frozen=True)
class Outcome:
    loss: torch.Tensor  # [batch]
    logit_diff: torch.Tensor
    needle_accuracy: torch.Tensor
    kl: torch.Tensor
    kl_count: torch.Tensor


@dataclass(frozen=True)
class Reference:
    """The full model's next-token distributions, kept for KL(full || streamed)."""

    probs: torch.Tensor  # [batch, pos, vocab]
    neg_entropy: torch.Tensor  # [batch, pos]: sum p log p

    @classmethod
    def of(cls, logits: torch.Tensor) -> Reference:
        logp = logits.log_softmax(-1)
        probs = logp.exp()
        return cls(probs, (probs * logp).sum(-1))


def outcome(
    logits: torch.Tensor, batch: TaxonomyBatch, reference: Reference | None, affected_from: int
) -> Outcome:
    """Per-prompt metrics of ``logits`` (a multiple of the batch: variants x prompts).

    log-probabilities are never materialised: log p = logit - logsumexp, so the loss reads
    one logit per position and KL(full || streamed) = sum p log p - sum p logit + logsumexp."""
    b = batch.n_prompts
    reps = logits.shape[0] // b
    tok, lengths = batch.tokens.repeat(reps, 1), batch.lengths.repeat(reps)
    lse = logits.logsumexp(-1)  # [n, pos]
    pos = torch.arange(tok.shape[1])
    real = pos[None, :] < (lengths[:, None] - 1)
    nll = lse[:, :-1] - logits[:, :-1].gather(-1, tok[:, 1:, None])[..., 0]
    loss = (nll * real[:, :-1]).sum(-1) / real[:, :-1].sum(-1).clamp(min=1)
    rows = torch.arange(tok.shape[0])
    last = batch.last.repeat(reps)
    at_last = logits[rows, last]
    diff = at_last[rows, batch.correct.repeat(reps)] - at_last[rows, batch.incorrect.repeat(reps)]
    if batch.has_needles:
        cp, mask = batch.copy_pos.repeat(reps, 1), batch.copy_mask.repeat(reps, 1)
        pred = logits[rows[:, None], cp].argmax(-1)
        hit = ((pred == batch.copy_target.repeat(reps, 1)) & mask).sum(-1).float()
        steps = mask.sum(-1)
        acc = torch.where(steps > 0, hit / steps.clamp(min=1), torch.nan)
    else:
        acc = torch.full((tok.shape[0],), torch.nan)
    if reference is None:
        kl = count = torch.zeros(tok.shape[0])
    else:
        shaped = logits.view(reps, b, *logits.shape[1:])
        cross = torch.einsum("rbpv,bpv->rbp", shaped, reference.probs).reshape(lse.shape)
        per_pos = reference.neg_entropy.repeat(reps, 1) - cross + lse
        affected = (pos[None, :] < lengths[:, None]) & (pos[None, :] >= affected_from)
        kl, count = (per_pos * affected).sum(-1), affected.sum(-1).float()
    return Outcome(loss, diff, acc, kl, count)


def prompt_chunks(batch: TaxonomyBatch, vocab: int, variants: int = 1) -> list[list[int]]:
    """Prompt index chunks whose logits (x variants) stay under ``LOGIT_BUDGET`` elements."""
    per_prompt = int(batch.tokens.shape[1]) * vocab * variants
    size = max(1, LOGIT_BUDGET // max(per_prompt, 1))
    idx = list(range(batch.n_prompts))
    return [idx[i : i + size] for i in range(0, len(idx), size)]


@dataclass(frozen=True)
class HeadDeviation:
    kl: Float[torch.Tensor, "layer head"]  # mean KL per affected position
    loss_delta: Float[torch.Tensor, "layer head"]  # mean over prompts, streamed - full
    logit_diff_delta: Float[torch.Tensor, "layer head"]
    needle_accuracy_delta: Float[torch.Tensor, "layer head"] | None
    affected_positions: int
    n_forward_prompts: int  # prompt-forwards run (a forward of a batch of b counts b)


def head_deviation(
    model: TransformerBridge,
    batch: TaxonomyBatch,
    sink: int,
    window: int,
    progress: Callable[[float, str], None] = lambda f, m: None,
) -> HeadDeviation:
    """Stream each head alone and measure the change of the output against the full model."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    vocab = int(model.cfg.d_vocab)
    sums = torch.zeros(5, n_layers, n_heads, dtype=torch.float64)  # kl, count, loss, diff, acc
    device = model.cfg.device
    forwards = 0
    chunks = prompt_chunks(batch, vocab, variants=1)
    for ci, index in enumerate(chunks):
        sub = batch.select(index)
        tokens = sub.tokens.to(device)
        with torch.no_grad():
            full = model(tokens).float().cpu()
        base = outcome(full, sub, None, sink + window)
        reference = Reference.of(full)
        forwards += sub.n_prompts
        per_forward = max(1, LOGIT_BUDGET // (sub.n_prompts * int(tokens.shape[1]) * vocab))
        for layer in range(n_layers):
            for h0 in range(0, n_heads, per_forward):
                heads = list(range(h0, min(n_heads, h0 + per_forward)))
                chosen = torch.zeros(len(heads) * sub.n_prompts, n_heads, dtype=torch.bool)
                for v, h in enumerate(heads):
                    chosen[v * sub.n_prompts : (v + 1) * sub.n_prompts, h] = True
                logits = forward_streamed(
                    model, tokens.repeat(len(heads), 1), {layer: chosen}, sink, window
                ).cpu()
                forwards += len(heads) * sub.n_prompts
                out = outcome(logits, sub, reference, sink + window)
                for v, h in enumerate(heads):
                    s = slice(v * sub.n_prompts, (v + 1) * sub.n_prompts)
                    acc = (out.needle_accuracy[s] - base.needle_accuracy).nan_to_num(0.0)
                    diff = out.logit_diff[s] - base.logit_diff
                    sums[:, layer, h] += torch.stack([
                        out.kl[s].sum(), out.kl_count[s].sum(),
                        (out.loss[s] - base.loss).sum(), diff.sum(), acc.sum(),
                    ]).double()  # fmt: skip
            progress((ci + (layer + 1) / n_layers) / len(chunks), f"streaming layer {layer}")
    count = int(sums[1, 0, 0])
    n = batch.n_prompts
    n_needle = int(batch.copy_mask.any(-1).sum())
    needle = (sums[4] / n_needle).float() if n_needle else None
    return HeadDeviation(
        (sums[0] / sums[1].clamp(min=1)).float(), (sums[2] / n).float(), (sums[3] / n).float(),
        needle, count, forwards,
    )  # fmt: skip
