"""Replay from layer L on the positions a patch can change only (causal prefix skip).

Under causal attention a patch at position p leaves every position < p unchanged, in every
layer. ``SuffixReplay`` therefore runs blocks ``L..`` on the residual stream at positions
``p..`` only; attention at those positions reads keys and values of positions < p from the
target run's own cache (recorded once), so each block's work shrinks from ``T`` to ``T - p``
positions. Two more savings:

- a patch of ``z`` at layer L starts from the target run's cached ``z`` (queries, keys, values
  and the attention of layer L are not recomputed, only the output projection onwards);
- in the last layer, the MLP runs at each prompt's metric position only.

The block is computed here from the model's weights in TransformerLens convention, as the
model computes it in compatibility mode (layer norms folded into the weights): ``h = norm(x)``;
``q, k, v = h @ W + b`` (K/V per key/value head; grouped-query attention repeats each KV head
over its query heads); the rotary embedding from the model's own cos/sin tables when it has
one; causal softmax of ``q k^T / attn_scale``; ``z = pattern v``;
``x += z @ W_O + b_O``; ``x += mlp(norm(x))`` with the model's own MLP module — or, for
parallel attention and MLP (GPT-NeoX / Pythia, GPT-J: ``cfg.parallel_attn_mlp``),
``x += z @ W_O + b_O + mlp(norm(x))`` with both reading the block's input. Partial rotary
(NeoX's ``rotary_pct``, GPT-J's ``rotary_dim``) rotates the first dimensions the tables cover;
GPT-J's ``(sin, cos)`` pair of adjacent-pair angles is read by ``rotary.block_tables``.
Patch hooks act on these tensors at the hook sites' shapes and positions (q/k/v before the
rotary embedding, as the model's ``hook_q/k/v``), so a variant patches exactly what the hooked
forward patches.

Support is detected, not assumed: replaying from layer 0 on a suffix, and from the cached
``z``, must reproduce the model's last-position logits (≤ 1e-4, relative to their scale);
otherwise ``supported`` is False and callers use ``BlockReplay`` on all positions. Blocks the
kernel does not compute are refused before that, with the reason: attention-score soft-capping
and post-attention/post-MLP norms (Gemma-2 style).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from analysis import hooks
from analysis.block_math import attention_scale, folded_norm, model_param
from analysis.patching.replay import BlockReplay, final_logits
from analysis.rotary import RotaryTables, apply_rotary, block_tables

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

log = logging.getLogger(__name__)
SUFFIX_TOLERANCE = 1e-4
ATTENTION_SITES = frozenset({"q", "k", "v", "pattern", "z"})
PatchFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LayerWeights:
    """One layer's attention weights flattened for single matmuls."""

    w_q: Float[torch.Tensor, "d_model hd"]
    b_q: Float[torch.Tensor, " hd"]
    w_kv: Float[torch.Tensor, "d_model kv"]
    b_kv: Float[torch.Tensor, " kv"]
    w_o: Float[torch.Tensor, "hd d_model"]
    b_o: Float[torch.Tensor, " d_model"]


def _flat(w: torch.Tensor) -> torch.Tensor:
    """[heads, d_model, d_head] -> [d_model, heads * d_head]."""
    return w.permute(1, 0, 2).reshape(w.shape[1], -1)


class SuffixReplay:
    """Blocks ``L..`` at positions ``p..`` with the target run's cached prefix keys/values."""

    def __init__(self, model: TransformerBridge, replay: BlockReplay) -> None:
        self.model, self.replay = model, replay
        cfg = model.cfg
        self.n_layers, self.n_batch = int(cfg.n_layers), replay.n_batch
        self.n_pos = int(replay.tokens.shape[1])
        self.last = replay.last.to(replay.tokens.device)
        self.max_start = int(self.last.min())
        self.norm_type = getattr(cfg, "normalization_type", None)
        self.eps = float(getattr(cfg, "eps", 1e-5))
        self.attn_only = bool(getattr(cfg, "attn_only", False))
        self.parallel = bool(getattr(cfg, "parallel_attn_mlp", False))
        self.supported, self.reason = False, ""
        self._pattern_effective: bool | None = None
        if not replay.supported:
            self.reason = f"layer replay is unsupported ({replay.reason})"
            return
        if missing := self._unsupported_block():
            self.reason = f"the suffix kernel does not compute {missing}"
            log.info("prefix skip unavailable (%s); replaying all positions", self.reason)
            return
        try:
            self._load()
        except Exception as exc:  # any failure means: do not use the suffix kernel here
            self.reason = f"the model's weights or caches are not in the expected form: {exc!r}"
            return
        self.supported, self.reason = self._self_check()
        if not self.supported:
            log.info("prefix skip unavailable (%s); replaying all positions", self.reason)

    # ---- set-up ---------------------------------------------------------------------------
    def _load(self) -> None:
        m = self.model
        w_q, w_k, w_v, w_o = (model_param(m, n) for n in ("W_Q", "W_K", "W_V", "W_O"))
        if w_q is None or w_k is None or w_v is None or w_o is None:
            raise ValueError("the model exposes no W_Q/W_K/W_V/W_O")
        self.n_heads, self.n_kv, self.d_head = int(w_q.shape[1]), int(w_k.shape[1]), w_q.shape[3]
        self.scale = attention_scale(m.cfg)
        weights = {"b_Q": w_q, "b_K": w_k, "b_V": w_v}
        biases = {n: model_param(m, n) for n in ("b_Q", "b_K", "b_V")}
        flat_b = {  # [layer, heads * d_head]; zeros where the model has no bias
            n: b.flatten(1) if b is not None else w.new_zeros(w.shape[0], w.shape[1] * w.shape[3])
            for (n, b), w in zip(biases.items(), weights.values(), strict=True)
        }
        b_o_all = model_param(m, "b_O")
        self.layers = []
        for i in range(self.n_layers):
            b = [flat_b[n][i] for n in ("b_Q", "b_K", "b_V")]
            b_o = b_o_all[i] if b_o_all is not None else w_o.new_zeros(w_o.shape[-1])
            self.layers.append(
                LayerWeights(
                    w_q=_flat(w_q[i]).contiguous(),
                    b_q=b[0].to(w_q.device),
                    w_kv=torch.cat([_flat(w_k[i]), _flat(w_v[i])], dim=1),
                    b_kv=torch.cat(b[1:]).to(w_q.device),
                    w_o=w_o[i].reshape(-1, w_o.shape[-1]),
                    b_o=b_o.to(w_o.device),
                )
            )
        self.rotary = self._rotary_tables()
        self.cache = self.replay.attention_cache  # recorded in the replay's one forward
        missing = [
            name
            for i in range(self.n_layers)
            for name in (hooks.site(kind, i).name for kind in ("k", "v", "z"))
            if name not in self.cache
        ]
        if missing:
            raise ValueError(f"the recording has no {missing[0]}")

    def _unsupported_block(self) -> str | None:
        """What of this model's blocks the kernel lacks, or None."""
        from analysis.models import sandwich_norms

        cap = float(getattr(self.model.cfg, "attn_scores_soft_cap", -1.0) or -1.0)
        if cap > 0:
            return f"attention-score soft-capping (attn_scores_soft_cap={cap:g})"
        if sandwich_norms(self.model):
            return "post-attention/post-MLP norms (Gemma-2 style)"
        return None

    def _rotary_tables(self) -> RotaryTables | None:
        """The model's rotary cos/sin [batch|1, pos, rotary_dim], from the recorded block calls."""
        if getattr(self.model.cfg, "positional_embedding_type", "standard") != "rotary":
            return None
        emb = self.replay.calls[0][1].get("position_embeddings")
        if not (isinstance(emb, tuple) and len(emb) == 2):
            raise ValueError("a rotary model whose blocks get no position_embeddings (cos, sin)")
        return block_tables(self.model, emb)

    def _self_check(self) -> tuple[bool, str]:
        want = self.replay.full_last
        scale = max(1.0, float(want.abs().max()))
        checks: list[tuple[int, int, str | None]] = [
            (0, self.max_start // 2 if self.max_start > 1 else 0, None),
            (self.n_layers - 1, 0, "z"),
        ]
        try:
            with torch.no_grad():
                for layer, start, site in checks:
                    got = self.run_from(layer, start, copies=1, site=site)
                    err = float((got - want).abs().max())
                    if not err <= SUFFIX_TOLERANCE * scale:
                        return False, f"suffix replay differs from the model by {err:.2e}"
        except Exception as exc:
            return False, f"suffix replay failed: {exc!r}"
        return True, "ok"

    def handles(self, kind: str) -> bool:
        """Whether patches of ``kind`` run here: a ``pattern`` patch only where editing the
        model's own ``hook_pattern`` changes its output (on some bridges it only observes, and
        the fast path must measure what the hooked forward measures)."""
        if not self.supported:
            return False
        if kind != "pattern":
            return True
        if self._pattern_effective is None:
            try:
                site, tokens = hooks.site("pattern", 0), self.replay.tokens
                hooks.require_effective_hook(self.model, site, tokens)
                self._pattern_effective = True
            except hooks.IneffectiveHook:
                self._pattern_effective = False
        return self._pattern_effective

    # ---- running --------------------------------------------------------------------------
    def _stack(self, t: torch.Tensor, copies: int) -> torch.Tensor:
        return t.repeat(copies, *([1] * (t.dim() - 1))) if copies > 1 else t

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The weightless pre-norm of the folded model (LN: centre + scale; RMS: scale)."""
        return folded_norm(x, self.norm_type, self.eps)

    def run_from(
        self,
        layer: int,
        start: int,
        copies: int,
        site: str | None = None,
        patch: PatchFn | None = None,
    ) -> Float[torch.Tensor, "rows d_vocab"]:
        """Logits at the last positions, with ``patch`` applied at ``site`` of ``layer``.

        ``start`` is the first position the patch can change (0 for all-position patches);
        ``patch`` sees full-length activations in the hook site's shape, ``copies`` stacked
        copies of the batch, and must leave positions before ``start`` alone.
        """
        start = max(0, min(start, self.max_start))
        x = self._stack(self.replay.resid_pre(layer), copies)
        if site == "resid_pre" and patch is not None:
            x = patch(x)
        x = x[:, start:]
        for i in range(layer, self.n_layers):
            here = site if i == layer and site in ATTENTION_SITES else None
            x = self._block(i, x, start, copies, here, patch if here else None)
        # the last block kept each prompt's metric position only: x is [rows, 1, d_model]
        return final_logits(self.model, x)[:, 0, :]

    def _last_at(self, copies: int, start: int) -> torch.Tensor:
        """Each stacked row's metric position, as an index into the suffix."""
        return self.last.repeat(copies) - start

    def _block(
        self, i: int, x: torch.Tensor, start: int, copies: int, site: str | None, patch: Any
    ) -> torch.Tensor:
        w, final = self.layers[i], i == self.n_layers - 1
        rows = torch.arange(x.shape[0], device=x.device)
        # in the last layer only the metric positions go on to the logits: queries there only,
        # unless the patch itself needs every query (q, pattern, z are patched at full length)
        last_queries = final and site not in ("q", "pattern", "z")
        if site == "z":
            z = self._stack(self.cache[hooks.site("z", i).name], copies)
            z = (patch(z) if patch is not None else z)[:, start:]
        else:
            at = self._last_at(copies, start) if last_queries else None
            z = self._attention(i, x, start, copies, site, patch, at)
        if final:
            at = self._last_at(copies, start)
            x = x[rows, at][:, None, :]
            z = z if last_queries else z[rows, at][:, None]
        out = x + z.flatten(2) @ w.w_o + w.b_o
        if not self.attn_only:  # a parallel block's MLP reads the block's input
            out = out + self.model.blocks[i].mlp(self.normalise(x if self.parallel else out))
        return out

    def _attention(
        self,
        i: int,
        x: torch.Tensor,
        start: int,
        copies: int,
        site: str | None,
        patch: Any,
        last_at: torch.Tensor | None,
    ) -> Float[torch.Tensor, "rows queries head d_head"]:
        """z at every suffix position, or (``last_at``) at each row's metric position only."""
        w, (h, h_kv, d) = self.layers[i], (self.n_heads, self.n_kv, self.d_head)
        rows, n_suffix = x.shape[0], x.shape[1]
        normed = self.normalise(x)
        k_s, v_s = (normed @ w.w_kv + w.b_kv).split([h_kv * d, h_kv * d], dim=-1)
        k = self._with_prefix(i, "k", k_s.reshape(rows, n_suffix, h_kv, d), start, copies)
        v = self._with_prefix(i, "v", v_s.reshape(rows, n_suffix, h_kv, d), start, copies)
        r = torch.arange(rows, device=x.device)
        q_in = normed if last_at is None else normed[r, last_at][:, None]
        q = (q_in @ w.w_q + w.b_q).reshape(rows, q_in.shape[1], h, d)
        q_pos = (start + last_at)[:, None] if last_at is not None else None
        if site == "q":
            q = patch(self._pad_front(q, start))[:, start:]
        elif site == "k":
            k = patch(k)
        elif site == "v":
            v = patch(v)
        if q_pos is None:
            q_pos = torch.arange(start, self.n_pos, device=x.device).expand(rows, -1)
        q, k = self._rotate(q, q_pos), self._rotate(k, None)
        if h_kv != h:
            k, v = k.repeat_interleave(h // h_kv, dim=2), v.repeat_interleave(h // h_kv, dim=2)
        scores = torch.einsum("rshd,rthd->rhst", q, k) / self.scale
        keys = torch.arange(self.n_pos, device=x.device)
        future = keys[None, None, :] > q_pos[:, :, None]  # [rows, queries, keys]
        scores = scores.masked_fill(future[:, None], float("-inf"))
        pattern = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        if site == "pattern":
            pattern = patch(self._pad_front(pattern, start, dim=2))[:, :, start:]
        return torch.einsum("rhst,rthd->rshd", pattern, v)

    def _with_prefix(
        self, i: int, kind: str, suffix: torch.Tensor, start: int, copies: int
    ) -> torch.Tensor:
        if start == 0:
            return suffix
        prefix = self.cache[hooks.site(kind, i).name][:, :start]
        return torch.cat([self._stack(prefix, copies), suffix], dim=1)

    @staticmethod
    def _pad_front(t: torch.Tensor, start: int, dim: int = 1) -> torch.Tensor:
        """Zeros for the positions before ``start`` (never read: the patch is at ≥ start)."""
        if start == 0:
            return t
        shape = list(t.shape)
        shape[dim] = start
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    def _rotate(self, t: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """Rotary embedding of ``t`` [rows, pos, heads, d_head] at ``positions`` [rows, pos]
        (None: positions 0..)."""
        return t if self.rotary is None else apply_rotary(t, self.rotary, positions)
