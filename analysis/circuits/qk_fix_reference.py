"""The QK fix edge by edge, literally as its definition reads (the exact path of ``qk_fix.py``).

For each q/k channel and each upstream node u: form the channel's edited input x + (a_u - o_u),
apply the pre-norm, project with the head's weights, rotate (rotary models), and take the
softmax of that one head. ``apply_qk_fix`` computes the same numbers with one normalisation and
one matmul per layer; the tests assert they agree. Too slow for GPT-2-sized models (a
normalisation and projection of [batch, pos, upstream, d_model] per head).
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from analysis.circuits.intervention import EdgePatcher, NodeValues
from analysis.circuits.qk_fix import LayerAttention, causal_softmax
from analysis.circuits.task import GradientRun


def _project_one(at: LayerAttention, x: torch.Tensor, kind: str, index: int) -> torch.Tensor:
    """Rotated q or k of head/KV head ``index`` for inputs x [b, p, u, d_model]."""
    patcher, layer = at.patcher, at.layer
    w, b = patcher.w[kind][layer][index], patcher.b[kind][layer][index]
    return at.rotate(torch.einsum("bpud,de->bpue", patcher.normalise(x), w) + b)


def _score(at: LayerAttention, new: torch.Tensor, head: int) -> torch.Tensor:
    """sum over prompts, i, j of (A'_u - A) dM/dA for one head's new patterns [b, u, i, j]."""
    delta = new - at.pattern[:, head, None]
    return torch.einsum("buij,bij->u", delta, at.grad[:, head])


def query_edges(at: LayerAttention, head: int, diff: NodeValues) -> torch.Tensor:
    x = at.channel_x("q", head)[:, :, None] + diff[:, :, : at.n_up]
    q = _project_one(at, x, "q", head)  # [b, p, u, e]
    k = at.k[:, :, head // at.group, None].expand_as(q)
    return _score(at, causal_softmax(at.scores(q, k)), head)


def key_edges(at: LayerAttention, kv: int, diff: NodeValues) -> torch.Tensor:
    x = at.channel_x("k", kv)[:, :, None] + diff[:, :, : at.n_up]
    k = _project_one(at, x, "k", kv)  # [b, p, u, e]
    total = x.new_zeros(at.n_up)
    for head in range(kv * at.group, (kv + 1) * at.group):
        q = at.q[:, :, head, None].expand_as(k)
        total = total + _score(at, causal_softmax(at.scores(q, k)), head)
    return total


def apply_qk_fix_reference(
    dense: Float[torch.Tensor, "node channel"],
    patcher: EdgePatcher,
    run: GradientRun,
    diff: NodeValues,
) -> Float[torch.Tensor, "node channel"]:
    """Same contract as ``qk_fix.apply_qk_fix``, one channel at a time."""
    out = dense.clone()
    for layer in range(patcher.graph.n_layers):
        at = LayerAttention(patcher, run, layer)
        for kind, method in (("q", query_edges), ("k", key_edges)):
            start, end, n_up = patcher.channel_group(layer, kind)
            for index in range(end - start):
                out[:n_up, start + index] = method(at, index, diff)
    return out
