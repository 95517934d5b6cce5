"""Exact attention softmax for query and key edges (the "QK fix" of AtP*, Kramár et al. 2024).

Attribution patching linearises the metric in every edge's input change. For an edge into a
head's query or key that is the weak point: the change moves the attention *scores*, and when
the attention is saturated (one position takes almost all of it, as an induction head's does)
the softmax gradient is ~0 however much a finite change would move the pattern. Kramár et al.
(2024, "AtP*: An efficient and scalable method for localizing LLM behaviour to components")
fix this for nodes by computing the change of the attention pattern exactly and linearising only
from the pattern on. Here the same is done per edge. For an edge u -> a{L}.h{H}<k>:

    k'  = norm(x_k + a_u - o_u) @ W_K[H] + b_K[H]            (exact, per edge)
    A'  = softmax(causal(q_H k'^T / scale))                   (exact)
    score(u -> k) = sum over prompts, query and key positions of (A' - A) . d metric / d A

with x_k the key channel's input, q_H, A the head's queries and pattern, all at the run the
gradient is taken at; queries likewise with q' and the run's keys. A key/value channel shared
by several query heads (GQA) sums over them. Value, MLP and logit edges keep the linear score.
As the ablation shrinks to zero the fixed score tends to the linear one (same first order).

No extra model pass: the per-edge work is one projection and one softmax of one head. It needs
attention computed as ``softmax(q k^T / scale)`` under a causal mask from the q/k hooks, which
``check_attention`` verifies against the model's own ``hook_pattern`` (rotary embeddings, which
act after the q/k hooks, are not reproduced: such models raise ``QKFixUnsupported``).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float

from analysis.circuits.intervention import EdgePatcher, NodeValues
from analysis.circuits.task import GradientRun

PATTERN_ATOL = 1e-3


class QKFixUnsupported(ValueError):
    """The model's attention is not ``softmax(q k^T / scale)`` of the q/k hooks."""


def attention_scale(patcher: EdgePatcher) -> float:
    cfg = patcher.model.cfg
    if not getattr(cfg, "use_attn_scale", True):
        return 1.0
    scale = float(getattr(cfg, "attn_scale", -1.0) or -1.0)
    return scale if scale > 0 else math.sqrt(float(cfg.d_head))


def _project(patcher: EdgePatcher, x: torch.Tensor, layer: int, kind: str) -> torch.Tensor:
    """q or k of every head/KV head n from its own input x [b, p, n, d_model] -> [b, p, n, e]."""
    w, b = patcher.w[kind][layer], patcher.b[kind][layer]
    return torch.einsum("bpnd,nde->bpne", patcher.normalise(x), w) + b


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    n_q, n_k = scores.shape[-2:]
    causal = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).tril()
    return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)


class _Layer:
    """One layer's queries, keys and patterns at a gradient run."""

    def __init__(self, patcher: EdgePatcher, run: GradientRun, layer: int) -> None:
        self.patcher, self.layer, self.scale = patcher, layer, attention_scale(patcher)
        self.x: dict[str, torch.Tensor] = {}
        for kind in ("q", "k"):
            start, end, self.n_up = patcher.channel_group(layer, kind)
            self.x[kind] = run.inputs[:, :, start:end]
        self.q = _project(patcher, self.x["q"], layer, "q")  # [b, p, head, e]
        self.k = _project(patcher, self.x["k"], layer, "k")  # [b, p, kv_head, e]
        self.group = self.q.shape[2] // self.k.shape[2]
        self.pattern = _softmax(self._scores(self.q, self.k.repeat_interleave(self.group, 2)))
        self.grad = run.pattern_grads[layer]

    def _scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q [b, i, ..., e], k [b, j, ..., e] -> scores [b, ..., i, j]."""
        return torch.einsum("bi...e,bj...e->b...ij", q, k) / self.scale

    def query_edges(self, head: int, diff: NodeValues) -> Float[torch.Tensor, " upstream"]:
        x = self.x["q"][:, :, head, None] + diff[:, :, : self.n_up]
        q = _project_one(self.patcher, x, self.layer, "q", head)  # [b, p, u, e]
        k = self.k[:, :, head // self.group, None].expand_as(q)
        return self._score(_softmax(self._scores(q, k)), head)

    def key_edges(self, kv: int, diff: NodeValues) -> Float[torch.Tensor, " upstream"]:
        x = self.x["k"][:, :, kv, None] + diff[:, :, : self.n_up]
        k = _project_one(self.patcher, x, self.layer, "k", kv)  # [b, p, u, e]
        total = x.new_zeros(self.n_up)
        for head in range(kv * self.group, (kv + 1) * self.group):
            q = self.q[:, :, head, None].expand_as(k)
            total = total + self._score(_softmax(self._scores(q, k)), head)
        return total

    def _score(self, new: torch.Tensor, head: int) -> Float[torch.Tensor, " upstream"]:
        """sum over prompts, i, j of (A'_u - A) dM/dA for one head's new patterns [b, u, i, j]."""
        delta = new - self.pattern[:, head, None]
        return torch.einsum("buij,bij->u", delta, self.grad[:, head])


def _project_one(
    patcher: EdgePatcher, x: torch.Tensor, layer: int, kind: str, index: int
) -> torch.Tensor:
    """q or k of head/KV head ``index`` for inputs x [b, p, u, d_model] -> [b, p, u, d_head]."""
    w, b = patcher.w[kind][layer][index], patcher.b[kind][layer][index]
    return torch.einsum("bpud,de->bpue", patcher.normalise(x), w) + b


def check_attention(patcher: EdgePatcher, run: GradientRun) -> None:
    """Raise ``QKFixUnsupported`` unless softmax(q k^T / scale) reproduces every pattern."""
    for layer in range(patcher.graph.n_layers):
        err = float((_Layer(patcher, run, layer).pattern - run.patterns[layer]).abs().max())
        if err > PATTERN_ATOL:
            raise QKFixUnsupported(
                f"layer {layer}'s attention pattern is not softmax(q k^T / scale) of its q/k "
                f"hooks (max difference {err:.3g}; rotary embeddings, ALiBi or soft-capping "
                "act after them), so the exact-softmax correction of q/k edges cannot be "
                "computed for this model; run with --no-qk-fix (qk_fix=False)"
            )


def apply_qk_fix(
    dense: Float[torch.Tensor, "node channel"],
    patcher: EdgePatcher,
    run: GradientRun,
    diff: NodeValues,
) -> Float[torch.Tensor, "node channel"]:
    """Replace the linear scores of every q/k edge in ``dense`` by the exact-softmax ones.

    ``diff`` is a_u - o_u for every node (the edge's input change); ``run`` the gradient run
    the scores are taken at."""
    out = dense.clone()
    for layer in range(patcher.graph.n_layers):
        at = _Layer(patcher, run, layer)
        for kind, method in (("q", at.query_edges), ("k", at.key_edges)):
            start, end, n_up = patcher.channel_group(layer, kind)
            for index in range(end - start):
                out[:n_up, start + index] = method(index, diff)
    return out
