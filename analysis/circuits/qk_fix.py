"""Exact attention softmax for query and key edges (the "QK fix" of AtP*, Kramár et al. 2024).

Attribution patching linearises the metric in every edge's input change. For an edge into a
head's query or key that is the weak point: the change moves the attention *scores*, and when
the attention is saturated (one position takes almost all of it, as an induction head's does)
the softmax gradient is ~0 however much a finite change would move the pattern. Kramár et al.
(2024, "AtP*: An efficient and scalable method for localizing LLM behaviour to components")
fix this for nodes by computing the change of the attention pattern exactly and linearising only
from the pattern on. Here the same is done per edge. For an edge u -> a{L}.h{H}<k>:

    k'  = rot(norm(x_k + a_u - o_u) @ W_K[H] + b_K[H])        (exact, per edge)
    A'  = softmax(causal(rot(q_H) k'^T / scale))              (exact)
    score(u -> k) = sum over prompts, query and key positions of (A' - A) . d metric / d A

with x_k the key channel's input, q_H, A the head's queries and pattern, all at the run the
gradient is taken at, and rot the model's rotary embedding (identity without one; the tables
are the (cos, sin) the run's blocks were given, or that a TransformerLens-native attention
indexed, in its own pairing, ``analysis.rotary``); queries likewise with q'
and the run's keys. A key/value channel shared by several query heads (GQA) sums over them.
Value, MLP and logit edges keep the linear score. As the ablation shrinks to zero the fixed score
tends to the linear one (same first order). No extra model pass.

Fast path (``apply_qk_fix``; ``qk_fix_reference.py`` is the per-edge original it is tested
equal to): per layer and q/k, every channel n and upstream node u at once, chunked over u. The
pre-norm is never applied to the (channel, node) sums x_n + d_u: with c() the centring (LN;
identity for RMSNorm), norm(x + d) @ W = (c(x) @ W + c(d) @ W) / s with
s = sqrt((|c(x)|² + 2 c(x).c(d) + |c(d)|²) / d_model + eps), so the projections are one matmul
of every node's centred diff with all heads' weights, [batch*pos*u, d_model] @ [d_model,
heads*d_head], plus dot products for s. Scores of all heads come from one batched matmul.

It needs attention computed as ``softmax(rot(q) rot(k)^T / scale)`` under a causal mask from the
q/k hooks, which ``check_attention`` verifies against the model's own ``hook_pattern`` (ALiBi
or soft-capping fail it). ``qk_fix_applicable`` turns a failed check into a logged fallback to
the linear scores, recorded on the task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from jaxtyping import Float

from analysis import block_math
from analysis.circuits.intervention import EdgePatcher, NodeValues
from analysis.circuits.task import CircuitTask, GradientRun
from analysis.rotary import apply_rotary

log = logging.getLogger(__name__)
PATTERN_ATOL = 1e-3
CHUNK_ELEMENTS = 1 << 24  # bound on the largest per-chunk tensor (floats): 64 MB in float32


class QKFixUnsupported(ValueError):
    """The model's attention is not ``softmax(rot(q) rot(k)^T / scale)`` of the q/k hooks."""


def attention_scale(patcher: EdgePatcher) -> float:
    return block_math.attention_scale(patcher.model.cfg)


def causal_softmax(scores: Float[torch.Tensor, "... q k"]) -> Float[torch.Tensor, "... q k"]:
    n_q, n_k = scores.shape[-2:]
    causal = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).tril()
    return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)


class LayerAttention:
    """One layer's queries, keys (rotated) and patterns at a gradient run, recomputed from the
    recorded channel inputs."""

    def __init__(self, patcher: EdgePatcher, run: GradientRun, layer: int) -> None:
        self.patcher, self.layer, self.scale = patcher, layer, attention_scale(patcher)
        self.rotary = run.rotary
        self.x: dict[str, torch.Tensor] = {}
        for kind in ("q", "k"):
            start, end, self.n_up = patcher.channel_group(layer, kind)
            self.x[kind] = run.inputs[:, :, start:end]
        w, b = patcher.w, patcher.b
        q = torch.einsum("bpnd,nde->bpne", patcher.normalise(self.x["q"]), w["q"][layer])
        k = torch.einsum("bpnd,nde->bpne", patcher.normalise(self.x["k"]), w["k"][layer])
        self.q = self.rotate(q + b["q"][layer])  # [b, p, head, e]
        self.k = self.rotate(k + b["k"][layer])  # [b, p, kv_head, e]
        self.n_kv = self.k.shape[2]
        self.group = self.q.shape[2] // self.n_kv
        self.pattern = causal_softmax(self.scores(self.q, self.k.repeat_interleave(self.group, 2)))
        self.grad = run.pattern_grads[layer]
        self._x: _ChannelInputs | None = None  # built on first use by the fast path

    def rotate(self, t: torch.Tensor) -> torch.Tensor:
        """The rotary embedding of q or k [b, pos, ..., e] (identity without one)."""
        return t if self.rotary is None else apply_rotary(t, self.rotary)

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q [b, i, ..., e], k [b, j, ..., e] -> scores [b, ..., i, j]."""
        return torch.einsum("bi...e,bj...e->b...ij", q, k) / self.scale

    def edges(
        self, diffs: NodeDiffs, first: int, last: int
    ) -> tuple[Float[torch.Tensor, "upstream head"], Float[torch.Tensor, "upstream kv_head"]]:
        """Fixed scores of nodes first..last-1 -> every query and every key of the layer."""
        new = self._shifted(diffs, first, last).permute(1, 2, 0, 3, 4)  # [b, p, u, n, e]
        n_heads = self.q.shape[2]
        return self._query_edges(new[:, :, :, :n_heads]), self._key_edges(new[:, :, :, n_heads:])

    def _query_edges(self, q: torch.Tensor) -> Float[torch.Tensor, "upstream head"]:
        b, i, u = q.shape[:3]
        q = self.rotate(q).reshape(b, i, u, self.n_kv, self.group, -1)
        scores = torch.einsum("biukge,bjke->bukgij", q, self.k) / self.scale
        return self._score(scores.reshape(b, u, -1, i, i))

    def _key_edges(self, k: torch.Tensor) -> Float[torch.Tensor, "upstream kv_head"]:
        """Summed over the query heads of each KV head's group."""
        b, j, u = k.shape[:3]
        q = self.q.view(b, j, self.n_kv, self.group, -1)
        scores = torch.einsum("bikge,bjuke->bukgij", q, self.rotate(k)) / self.scale
        per_head = self._score(scores.reshape(b, u, -1, j, j))
        return per_head.view(u, self.n_kv, self.group).sum(-1)

    def _score(self, scores: torch.Tensor) -> Float[torch.Tensor, "upstream head"]:
        """sum over prompts, i, j of (A' - A) dM/dA for new scores [b, u, head, i, j]."""
        delta = causal_softmax(scores) - self.pattern[:, None]
        return torch.einsum("buhij,bhij->uh", delta, self.grad)

    def _shifted(self, diffs: NodeDiffs, first: int, last: int) -> torch.Tensor:
        """norm(x_n + d_u) @ W_n + b_n [u, b, p, n, e] for every q and k channel n of the
        layer (queries, then keys) and node u in first..last-1, without forming x_n + d_u."""
        if self._x is None:
            self._x = _ChannelInputs(self.patcher, self.x, self.layer)
        x, d_c = self._x, diffs.centred[first:last]
        u, b, p, d = d_c.shape
        new = (d_c.view(-1, d) @ x.weight).view(u, b, p, -1, x.from_x.shape[-1])
        new += x.from_x
        if self.patcher.norm_type is not None:
            square = (
                x.square[None]
                + 2 * torch.einsum("bpnd,ubpd->ubpn", x.centred, d_c)
                + diffs.square[first:last]
            )
            new /= (square.clamp(min=0) / d + self.patcher.eps).sqrt()[..., None]
        return new.add_(x.bias)

    def chunk_size(self) -> int:
        """Upstream nodes per chunk, so that no per-chunk tensor exceeds CHUNK_ELEMENTS."""
        b, p, n, d = self.x["q"].shape
        per_node = b * p * max(d, (n + self.n_kv) * self.q.shape[-1], n * p)
        return max(1, CHUNK_ELEMENTS // per_node)


class _ChannelInputs:
    """A layer's q and k channel inputs (queries, then keys) as the shifted projection uses
    them: centred, their squared norms, their projections, and the stacked weights/biases."""

    def __init__(self, patcher: EdgePatcher, x: dict[str, torch.Tensor], layer: int) -> None:
        self.centred = _centre(patcher, torch.cat([x["q"], x["k"]], dim=2))  # [b, p, n, d]
        self.square = self.centred.pow(2).sum(-1)
        w = torch.cat([patcher.w["q"][layer], patcher.w["k"][layer]])  # [n, d, e]
        self.bias = torch.cat([patcher.b["q"][layer], patcher.b["k"][layer]])  # [n, e]
        self.from_x = torch.einsum("bpnd,nde->bpne", self.centred, w)
        self.weight = w.permute(1, 0, 2).reshape(w.shape[1], -1)  # [d, n * e]


@dataclass
class NodeDiffs:
    """Every node's input change a_u - o_u, node-major [u, b, p, d], centred as the pre-norm
    centres (LN; unchanged otherwise), with its squared norms [u, b, p, 1]."""

    centred: torch.Tensor
    square: torch.Tensor

    @classmethod
    def of(cls, patcher: EdgePatcher, diff: NodeValues) -> NodeDiffs:
        centred = _centre(patcher, diff.permute(2, 0, 1, 3)).contiguous()
        return cls(centred, centred.pow(2).sum(-1, keepdim=True))


def _centre(patcher: EdgePatcher, t: torch.Tensor) -> torch.Tensor:
    if patcher.norm_type in ("LN", "LNPre"):
        return t - t.mean(-1, keepdim=True)
    return t


def check_attention(patcher: EdgePatcher, run: GradientRun) -> None:
    """Raise ``QKFixUnsupported`` unless softmax(rot(q) rot(k)^T / scale) reproduces every
    recorded pattern."""
    cap = float(getattr(patcher.model.cfg, "attn_scores_soft_cap", -1.0) or -1.0)
    if cap > 0:
        raise QKFixUnsupported(
            f"attention-score soft-capping (attn_scores_soft_cap={cap:g}) acts between q k^T "
            "and the softmax; the QK fix does not compute it"
        )
    rotary = getattr(patcher.model.cfg, "positional_embedding_type", "standard") == "rotary"
    if rotary and run.rotary is None:
        raise QKFixUnsupported(
            "the model is rotary but its forward showed no rotary tables (no position_embeddings "
            "given to its blocks, no native attention module rotating from cached cos/sin "
            "tables in either convention), so its q/k hooks cannot be rotated as it does"
        )
    for layer in range(patcher.graph.n_layers):
        recomputed = LayerAttention(patcher, run, layer).pattern
        err = float((recomputed - run.patterns[layer]).abs().max())
        if err > PATTERN_ATOL:
            raise QKFixUnsupported(
                f"layer {layer}'s attention pattern is not softmax(q k^T / scale) of its q/k "
                f"hooks (max difference {err:.3g}; ALiBi, soft-capping or another score "
                "transform acts after them)"
            )


def qk_fix_applicable(task: CircuitTask, run: GradientRun) -> bool:
    """Whether the QK fix can be computed for this model; when not, the reason is logged and
    kept in ``task.qk_fix_skipped`` and the caller scores q/k edges linearly."""
    try:
        check_attention(task.patcher, run)
    except QKFixUnsupported as exc:
        task.qk_fix_skipped = str(exc)
        log.warning("QK fix not applied, q/k edges scored linearly: %s", exc)
        return False
    return True


def apply_qk_fix(
    dense: Float[torch.Tensor, "node channel"],
    patcher: EdgePatcher,
    run: GradientRun,
    diff: NodeValues,
) -> Float[torch.Tensor, "node channel"]:
    """Replace the linear scores of every q/k edge in ``dense`` by the exact-softmax ones.

    ``diff`` is a_u - o_u for every node (the edge's input change); ``run`` the gradient run
    the scores are taken at."""
    out, diffs = dense.clone(), NodeDiffs.of(patcher, diff)
    for layer in range(patcher.graph.n_layers):
        at = LayerAttention(patcher, run, layer)
        (q_start, q_end, n_up), (k_start, k_end, _) = (
            patcher.channel_group(layer, kind) for kind in ("q", "k")
        )
        step = at.chunk_size()
        for first in range(0, n_up, step):
            last = min(first + step, n_up)
            out[first:last, q_start:q_end], out[first:last, k_start:k_end] = at.edges(
                diffs, first, last
            )
    return out
