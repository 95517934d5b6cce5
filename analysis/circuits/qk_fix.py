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
import weakref
from dataclasses import dataclass, field
from functools import cached_property

import torch
from jaxtyping import Float

from analysis import block_math
from analysis.circuits.intervention import EdgePatcher, NodeValues
from analysis.circuits.task import CircuitTask, GradientRun
from analysis.rotary import apply_rotary

log = logging.getLogger(__name__)
PATTERN_ATOL = 1e-3
CHUNK_ELEMENTS = 1 << 24  # bound on the largest per-chunk tensor (floats): 64 MB in float32
# which fast kernel computes the fixed scores: "auto" (the cheaper one the model allows),
# "scores" (score space; attention without rotary embeddings) or "projection"
KERNEL = "auto"
CAUSAL_BLOCKS = 2  # query-row blocks of the score-space kernel (1: none)


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
        self.x: dict[str, torch.Tensor] = {}  # [b, p, 1 | n, d]: shared by the group, or each
        self.unnormed: dict[str, torch.Tensor] = {}  # c(x) @ W [b, p, n, e], c: the centring
        pre: dict[str, torch.Tensor] = {}  # norm(x) @ W + b
        for kind in ("q", "k"):
            group = run.group(layer, kind)
            self.x[kind], self.n_up = group.inputs, group.n_up
            bias, sigma = patcher.b[kind][layer], self._norm_scale(group.inputs)
            if group.projection is not None:  # as the run computed it
                pre[kind] = group.projection
                self.unnormed[kind] = (group.projection - bias) * sigma
            else:
                self.unnormed[kind] = _project(
                    _centre(patcher, group.inputs), patcher.w[kind][layer]
                )
                pre[kind] = self.unnormed[kind] / sigma + bias
        xq, xk = self.x["q"], self.x["k"]  # one input for every q and k channel?
        self.shared_input = bool(xq.shape[2] == 1 and xk.shape[2] == 1 and torch.equal(xq, xk))
        self.q = self.rotate(pre["q"])  # [b, p, head, e]
        self.k = self.rotate(pre["k"])  # [b, p, kv_head, e]
        self.n_kv = self.k.shape[2]
        self.group = self.q.shape[2] // self.n_kv
        self.pattern = causal_softmax(self.scores(self.q, self.k.repeat_interleave(self.group, 2)))
        self.grad = run.pattern_grads[layer]
        self._x: _ChannelInputs | None = None  # built on first use by the projection kernel
        self._s: dict[int, _ScoreSpace] = {}  # per CAUSAL_BLOCKS, built on first use

    def _norm_scale(self, x: torch.Tensor) -> torch.Tensor:
        """The folded pre-norm's divisor sqrt(mean(c(x)^2) + eps) [b, p, 1 | n, 1] (1 without
        a norm)."""
        if self.patcher.norm_type is None:
            return torch.ones_like(x[..., :1])
        return (_centre(self.patcher, x).pow(2).mean(-1, keepdim=True) + self.patcher.eps).sqrt()

    def channel_x(self, kind: str, index: int) -> torch.Tensor:
        """The input [b, p, d] of channel ``index`` of the layer's q or k group."""
        x = self.x[kind]
        return x[:, :, 0 if x.shape[2] == 1 else index]

    def rotate(self, t: torch.Tensor) -> torch.Tensor:
        """The rotary embedding of q or k [b, pos, ..., e] (identity without one)."""
        return t if self.rotary is None else apply_rotary(t, self.rotary)

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q [b, i, ..., e], k [b, j, ..., e] -> scores [b, ..., i, j]."""
        return torch.einsum("bi...e,bj...e->b...ij", q, k) / self.scale

    # ---- choice of kernel ----------------------------------------------------------------
    def live_rows(self) -> torch.Tensor:
        """Query positions where some prompt's d metric / d pattern is non-zero (a row with a
        zero gradient contributes nothing: in the last layer, the metric's positions only)."""
        return (self.grad != 0).any(3).any(1).any(0).nonzero()[:, 0]

    def use_score_space(self) -> bool:
        """The score-space kernel costs b d 2 H |live| p multiply-adds per upstream node, the
        projection kernel b p d (H + KV) e; it needs attention without rotary embeddings."""
        if KERNEL != "auto":
            return KERNEL == "scores"
        if self.rotary is not None:
            return False
        n_heads, e = self.q.shape[2], self.q.shape[3]
        return 2 * n_heads * len(self.live_rows()) < (n_heads + self.n_kv) * e

    def edges(
        self, diffs: NodeDiffs, first: int, last: int
    ) -> tuple[Float[torch.Tensor, "upstream head"], Float[torch.Tensor, "upstream kv_head"]]:
        """Fixed scores of nodes first..last-1 -> every query and every key of the layer."""
        if self.use_score_space():
            if CAUSAL_BLOCKS not in self._s:
                self._s[CAUSAL_BLOCKS] = _ScoreSpace(self)
            return self._s[CAUSAL_BLOCKS].edges(diffs, first, last)
        return self.projected_edges(diffs, first, last)

    def chunk_size(self) -> int:
        """Upstream nodes per chunk, so that no per-chunk tensor exceeds CHUNK_ELEMENTS."""
        b, p, _, d = self.x["q"].shape
        n_heads, e = self.q.shape[2], self.q.shape[3]
        if self.use_score_space():
            per_node = b * p * max(d, n_heads * p)
        else:
            per_node = b * p * max(d, (n_heads + self.n_kv) * e, n_heads * p)
        return max(1, CHUNK_ELEMENTS // per_node)

    # ---- projection kernel: every node's diff projected with every head's W_Q, W_K --------
    def projected_edges(
        self, diffs: NodeDiffs, first: int, last: int
    ) -> tuple[Float[torch.Tensor, "upstream head"], Float[torch.Tensor, "upstream kv_head"]]:
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
            self._x = _ChannelInputs(self)
        x, d_c = self._x, diffs.node_major[first:last]
        u, b, p, d = d_c.shape
        new = (d_c.view(-1, d) @ x.weight).view(u, b, p, -1, x.from_x.shape[-1])
        new += x.from_x
        if self.patcher.norm_type is not None:
            cross = torch.einsum("bpnd,ubpd->ubpn", x.centred, d_c)  # n: 1 when shared
            square = x.square[None] + 2 * cross + diffs.square_node_major[first:last]
            new /= (square.clamp(min=0) / d + self.patcher.eps).sqrt()[..., None]
        return new.add_(x.bias)


def _project(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x [b, p, 1 | n, d] (one shared input, or one per channel) @ w [n, d, e] -> [b, p, n, e]."""
    if x.shape[2] == 1:
        return torch.einsum("bpd,nde->bpne", x[:, :, 0], w)
    return torch.einsum("bpnd,nde->bpne", x, w)


class _ChannelInputs:
    """A layer's q and k channel inputs (queries, then keys) as the shifted projection uses
    them: centred, their squared norms, their projections, and the stacked weights/biases.
    Shared inputs stay one per group ([b, p, 1, d]) unless the two groups' inputs differ."""

    def __init__(self, at: LayerAttention) -> None:
        patcher, layer = at.patcher, at.layer
        xq, xk = at.x["q"], at.x["k"]
        n_q, n_kv = at.q.shape[2], at.n_kv
        if at.shared_input:
            x = xq
        else:
            x = torch.cat([xq.expand(-1, -1, n_q, -1), xk.expand(-1, -1, n_kv, -1)], dim=2)
        self.centred = _centre(patcher, x)  # [b, p, 1 | n, d]
        self.square = self.centred.pow(2).sum(-1)
        w = torch.cat([patcher.w["q"][layer], patcher.w["k"][layer]])  # [n, d, e]
        self.bias = torch.cat([patcher.b["q"][layer], patcher.b["k"][layer]])  # [n, e]
        self.from_x = torch.cat([at.unnormed["q"], at.unnormed["k"]], dim=2)  # [b, p, n, e]
        self.weight = w.permute(1, 0, 2).reshape(w.shape[1], -1)  # [d, n * e]


class _ScoreSpace:
    """The score-space kernel (attention without rotary embeddings): a node's diff d moves
    query i's score with key j by c(d_i) . (W_Q[h] k_j) / s and key j's score with query i by
    c(d_j) . (W_K[g] q_i) / s, so every new score is one dot product in d_model space of the
    centred diff with a vector that does not depend on the node; for all nodes of a chunk,
    heads and (query row, key position) pairs that is one batched matmul per prompt,
    [pos * u, d_model] @ [d_model, heads * pos], instead of projecting every diff through
    every head's weights ([batch * pos * u, d_model] @ [d_model, (heads + kv) * d_head]).
    With s the pre-norm's scale for x + d (see ``LayerAttention._shifted``):

        score'_q(i, j) = ((c(x_i) W_Q[h]) . k_j + c(d_i) . (W_Q[h] k_j)) / s_i + b_Q . k_j
        score'_k(i, j) = (q_i . (c(x_j) W_K[g]) + c(d_j) . (W_K[g] q_i)) / s_j + q_i . b_K

    (all over the attention scale). Only query rows with a non-zero pattern gradient are
    computed (``LayerAttention.live_rows``), in row blocks (``CAUSAL_BLOCKS``): the rows of a
    block see the keys up to its last row only, so the first half of the rows needs half of
    the keys (3/4 of the products with two blocks). The diffs are read position-major
    ([b, pos, u, d], ``NodeDiffs.position_major``), so a block's rows and keys are views of
    them, and the scores come out [b, i, u, head, j] (queries) and [b, j, u, head, i] (keys,
    the softmax over dim 1)."""

    def __init__(self, at: LayerAttention) -> None:
        patcher, layer, self.at = at.patcher, at.layer, at
        n_heads, group, n_pos = at.q.shape[2], at.group, at.q.shape[1]
        w_q = patcher.w["q"][layer]  # [head, d, e]
        w_k = patcher.w["k"][layer].repeat_interleave(group, 0)  # [head, d, e]
        b_k = patcher.b["k"][layer].repeat_interleave(group, 0)  # [head, e]
        k = at.k.repeat_interleave(group, 2)  # [b, j, head, e]
        self.kinds = ("q",) if at.shared_input else ("q", "k")  # the distinct channel inputs
        cx = {kind: _centre(patcher, at.x[kind]) for kind in self.kinds}  # [b, p, 1|n, d]
        self.cx = {kind: c.flatten(0, 1).transpose(1, 2) for kind, c in cx.items()}  # [bp, d, n]
        self.square = {kind: c.pow(2).sum(-1) for kind, c in cx.items()}  # [b, p, 1|n]
        inv = 1.0 / at.scale
        proj_k = at.unnormed["k"].repeat_interleave(group, 2)  # [b, j, head, e]
        # node-free parts, all rows: queries [b, d, head, j], [b, i, head, j], [b, head, j];
        # keys [b, d, head, i], [b, head, i, j], [b, head, i]
        k_tilde = torch.einsum("bjhe,hde->bdhj", k, w_q).mul_(inv)
        q_base = torch.einsum("bihe,bjhe->bihj", at.unnormed["q"], k).mul_(inv)
        q_bias = torch.einsum("he,bjhe->bhj", patcher.b["q"][layer], k).mul_(inv)
        q_tilde = torch.einsum("bihe,hde->bdhi", at.q, w_k).mul_(inv)
        k_base = torch.einsum("bihe,bjhe->bhij", at.q, proj_k).mul_(inv)
        k_bias = torch.einsum("bihe,he->bhi", at.q, b_k).mul_(inv)
        grad, pattern = at.grad, at.pattern  # [b, head, i, j]
        live = at.live_rows()
        self.const = (grad * pattern)[:, :, live].sum((0, 2, 3))  # [head]
        pos = torch.arange(n_pos, device=k.device)
        self.blocks: list[_RowBlock] = []
        bounds = _row_blocks(n_pos, CAUSAL_BLOCKS)
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            rows = live[(live >= start) & (live < end)]
            if len(rows) == 0:
                continue
            first, n_rows = int(rows[0]), len(rows)
            contiguous = bool(int(rows[-1]) - first + 1 == n_rows)
            future = torch.zeros(n_rows, end, dtype=q_base.dtype, device=q_base.device)
            future.masked_fill_(pos[None, :end] > rows[:, None], float("-inf"))  # [i, j]
            g = grad[:, :, rows, :end]  # [b, head, i, j]
            self.blocks.append(_RowBlock(
                rows=rows, end=end, span=(first, first + n_rows) if contiguous else None,
                k_tilde=k_tilde[..., :end].flatten(2),  # [b, d, head * j]
                q_base=q_base[:, rows, :, :end][:, :, None],  # [b, i, 1, head, j]
                q_bias=q_bias[:, None, None, :, :end] + future[None, :, None, None],
                grad_q=g.permute(0, 2, 1, 3)[:, :, None],  # [b, i, 1, head, j]
                q_tilde=q_tilde[..., rows].flatten(2),  # [b, d, head * i]
                k_base=k_base[:, :, rows, :end].permute(0, 3, 1, 2)[:, :, None],  # [b,j,1,h,i]
                k_bias=k_bias[:, None, None][..., rows] + future.T[None, :, None, None],
                grad_k=g.permute(0, 3, 1, 2)[:, :, None],  # [b, j, 1, head, i]
            ))  # fmt: skip
        self.n_heads = n_heads

    def _scales(
        self, kind: str, d_all: torch.Tensor, sq_all: torch.Tensor
    ) -> Float[torch.Tensor, "batch pos upstream n"]:
        """s of x + d [b, p, u, 1 | n] at every position for diffs d [b, p, u, d]: the
        products c(x) . c(d) of equal positions are one batched matmul over (prompt, position),
        [u, d] @ [d, 1 | n]."""
        b, p, u, d = d_all.shape
        cross = torch.bmm(d_all.view(b * p, u, d), self.cx[kind]).view(b, p, u, -1)
        square = cross.mul_(2).add_(self.square[kind][:, :, None]).add_(sq_all[..., None])
        return square.clamp_(min=0).div_(d).add_(self.at.patcher.eps).sqrt_()

    def edges(
        self, diffs: NodeDiffs, first: int, last: int
    ) -> tuple[Float[torch.Tensor, "upstream head"], Float[torch.Tensor, "upstream kv_head"]]:
        at, normed = self.at, self.at.patcher.norm_type is not None
        d_all, sq_all = diffs.position_major(first, last)  # [b, p, u, d], [b, p, u]
        b, p, u, d = d_all.shape
        h = self.n_heads
        scales = {kind: self._scales(kind, d_all, sq_all) for kind in self.kinds} if normed else {}
        if normed:
            scales.setdefault("k", scales["q"])  # keys reading the queries' input share theirs
        queries = d_all.new_zeros(u, h)
        keys_per_head = d_all.new_zeros(u, h)
        for blk in self.blocks:
            n_i, n_j = len(blk.rows), blk.end
            d_q = blk.rows_of(d_all)
            # queries: [b, i, u, head, j]
            new = torch.bmm(d_q.reshape(b, n_i * u, d), blk.k_tilde).view(b, n_i, u, h, n_j)
            new += blk.q_base
            if normed:
                new /= blk.rows_of(scales["q"])[..., None]  # [b, i, u, 1 | head, 1]
            new += blk.q_bias
            queries += torch.softmax(new, -1).mul_(blk.grad_q).sum((0, 1, 4))
            # keys: every key position j < end of the diff, [b, j, u, head, i]
            d_k = d_all[:, :n_j].reshape(b, n_j * u, d)
            new = torch.bmm(d_k, blk.q_tilde).view(b, n_j, u, h, n_i)
            new += blk.k_base
            if normed:
                s = scales["k"][:, :n_j]  # [b, j, u, 1 | kv]
                s = s.repeat_interleave(at.group, 3) if s.shape[3] > 1 else s
                new /= s[..., None]
            new += blk.k_bias
            keys_per_head += torch.softmax(new, 1).mul_(blk.grad_k).sum((0, 1, 4))
        queries -= self.const
        keys_per_head -= self.const
        keys = keys_per_head.view(u, at.n_kv, at.group).sum(-1)
        return queries, keys


@dataclass
class _RowBlock:
    """Query rows ``rows`` (all below ``end``; ``span``: (first, last + 1) when they are
    consecutive) of the score-space kernel and what they need of the node-free parts,
    restricted to keys j < end."""

    rows: torch.Tensor
    end: int
    span: tuple[int, int] | None
    k_tilde: torch.Tensor
    q_base: torch.Tensor
    q_bias: torch.Tensor
    grad_q: torch.Tensor
    q_tilde: torch.Tensor
    k_base: torch.Tensor
    k_bias: torch.Tensor
    grad_k: torch.Tensor

    def rows_of(self, t: torch.Tensor) -> torch.Tensor:
        """The block's query rows of ``t`` [b, pos, ...] (a view when they are consecutive)."""
        if self.span is None:
            return t.index_select(1, self.rows)
        return t[:, self.span[0] : self.span[1]]


def _row_blocks(n_pos: int, n_blocks: int) -> list[int]:
    """Block boundaries 0 = b_0 < ... < b_n = n_pos, the blocks about equal in size."""
    n_blocks = max(1, min(n_blocks, n_pos))
    return sorted({round(i * n_pos / n_blocks) for i in range(n_blocks + 1)})


@dataclass
class NodeDiffs:
    """Every node's input change a_u - o_u, centred as the pre-norm centres (LN; unchanged
    otherwise), node-major [u, b, p, d] (projection kernel, built on first use) or
    position-major [b, p, u, d] one chunk of nodes at a time (score-space kernel, each chunk
    built once), with their squared norms."""

    patcher: EdgePatcher
    diff: NodeValues  # [b, p, u, d]
    _chunks: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def of(cls, patcher: EdgePatcher, diff: NodeValues) -> NodeDiffs:
        return cls(patcher, diff)

    def _centred(self, view: torch.Tensor) -> torch.Tensor:
        """``view`` centred over d_model, contiguous (one pass over it)."""
        if self.patcher.norm_type not in ("LN", "LNPre"):
            return view.contiguous()
        out = torch.empty(view.shape, dtype=view.dtype, device=view.device)
        return torch.sub(view, view.mean(-1, keepdim=True), out=out)

    @cached_property
    def node_major(self) -> torch.Tensor:
        return self._centred(self.diff.permute(2, 0, 1, 3))

    @cached_property
    def square_node_major(self) -> torch.Tensor:  # [u, b, p, 1]
        return torch.linalg.vector_norm(self.node_major, dim=-1, keepdim=True).square_()

    def position_major(self, first: int, last: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Nodes first..last-1: the centred diffs [b, p, u, d] (contiguous, so that a block of
        positions is a view) and their squared norms [b, p, u]."""
        if (first, last) not in self._chunks:
            chunk = self._centred(self.diff[:, :, first:last])
            self._chunks[first, last] = (chunk, torch.linalg.vector_norm(chunk, dim=-1).square_())
        return self._chunks[first, last]


def _centre(patcher: EdgePatcher, t: torch.Tensor) -> torch.Tensor:
    if patcher.norm_type in ("LN", "LNPre"):
        return t - t.mean(-1, keepdim=True)
    return t


_ATTENTION: weakref.WeakKeyDictionary[GradientRun, dict[tuple, LayerAttention]] = (
    weakref.WeakKeyDictionary()
)


def layer_attention(patcher: EdgePatcher, run: GradientRun, layer: int) -> LayerAttention:
    """``LayerAttention(patcher, run, layer)``, built once per run (the attention check and the
    fixed scores share it)."""
    cache = _ATTENTION.setdefault(run, {})
    key = (id(patcher), layer, attention_scale(patcher))
    if key not in cache:
        cache[key] = LayerAttention(patcher, run, layer)
    return cache[key]


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
        recomputed = layer_attention(patcher, run, layer).pattern
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
    diffs: NodeDiffs | None = None,
) -> Float[torch.Tensor, "node channel"]:
    """Replace the linear scores of every q/k edge in ``dense`` by the exact-softmax ones.

    ``diff`` is a_u - o_u for every node (the edge's input change); ``run`` the gradient run
    the scores are taken at; ``diffs`` its ``NodeDiffs``, when kept across calls with the
    same ``diff`` (EAP-IG's inputs path)."""
    out = dense.clone()
    diffs = NodeDiffs.of(patcher, diff) if diffs is None else diffs
    ends = {patcher.channel_group(layer, kind)[2] for layer in range(patcher.graph.n_layers)
            for kind in ("q", "k")}  # fmt: skip
    for layer in range(patcher.graph.n_layers):
        at = layer_attention(patcher, run, layer)
        (q_start, q_end, n_up), (k_start, k_end, _) = (
            patcher.channel_group(layer, kind) for kind in ("q", "k")
        )
        for first, last in node_chunks(ends, n_up, at.chunk_size()):
            out[first:last, q_start:q_end], out[first:last, k_start:k_end] = at.edges(
                diffs, first, last
            )
    return out


def node_chunks(ends: set[int], n_up: int, size: int) -> list[tuple[int, int]]:
    """Consecutive node ranges covering 0..n_up-1, at most ``size`` nodes each, split at every
    q/k group's upstream end in ``ends`` so that every layer reuses the same chunks (each
    chunk's diffs are laid out once per call)."""
    bounds = sorted({0, n_up} | {e for e in ends if e < n_up})
    chunks = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        chunks += [(first, min(first + size, stop)) for first in range(start, stop, size)]
    return chunks
