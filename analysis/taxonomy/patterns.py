"""Scores computed from attention patterns alone: span, sinks, head similarity.

All functions take one prompt's real-length patterns ``[layer, head, q, k]`` (rows sum to 1,
causal) or, for similarity, heads flattened to ``[head, q, k]``.

- ``attention_span`` (MoA's per-head elastic span): for each query q, the smallest window
  w (keys q-w+1..q) that holds at least ``coverage`` of q's attention; 1 for a head that
  attends to itself, q+1 for one that needs the first token.
- ``sink_positions``: the prompt's attention sinks — position 0 and any later key that
  receives at least ``threshold`` of the attention of the queries after it, averaged over
  all heads (delimiters such as newlines or full stops become sinks in trained models).
- ``sink_mass``: per head, the mean over queries q >= 1 of the attention on the sinks <= q.
- ``js_distance``: the Jensen-Shannon distance (base 2, in [0, 1]) between two heads'
  attention rows, averaged over query rows (at most ``JS_ROWS`` evenly spaced rows per prompt,
  row 0 excluded: it is the same in every head); ``cluster_heads`` groups heads by it (average
  linkage) and names each cluster's medoid its representative head (ProxyAttn's idea).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

JS_ROWS = 32  # query rows per prompt that head similarity averages over


def attention_span(
    pattern: Float[torch.Tensor, "... q k"], coverage: float
) -> Int[torch.Tensor, "... q"]:
    """Smallest recent window (in tokens, including q) holding ``coverage`` of each row."""
    n = pattern.shape[-1]
    q = torch.arange(n)
    back = (q[:, None] - q[None, :]).clamp(min=0)  # [q, j]: key q - j (clamped at 0)
    valid = q[None, :] <= q[:, None]  # j <= q
    rows = pattern.float().gather(-1, back.expand(*pattern.shape[:-2], n, n))
    mass = (rows * valid).cumsum(-1)  # mass in keys q-j..q
    reached = mass >= coverage - 1e-6
    span = torch.where(reached, q.expand_as(mass), n).amin(-1) + 1
    return torch.minimum(span, q + 1)


def sink_positions(pattern: Float[torch.Tensor, "layer head q k"], threshold: float) -> list[int]:
    """Position 0 and the keys that draw ``threshold`` of later queries' attention on average."""
    n = pattern.shape[-1]
    if n < 2:
        return [0]
    received = pattern.float().mean((0, 1))  # [q, k] averaged over heads
    later = torch.tril(torch.ones(n, n), diagonal=-1)  # q > k
    mean_in = (received * later).sum(0) / later.sum(0).clamp(min=1)
    return [0] + [k for k in range(1, n - 1) if float(mean_in[k]) >= threshold]


def sink_mass(
    pattern: Float[torch.Tensor, "layer head q k"], sinks: Sequence[int]
) -> Float[torch.Tensor, "layer head"]:
    """Mean over queries q >= 1 of the attention on the sink positions (causal: sinks <= q)."""
    n = pattern.shape[-1]
    if n < 2:
        return pattern.new_zeros(pattern.shape[:2]).float()
    return pattern.float()[..., 1:, list(sinks)].sum(-1).mean(-1)


def _xlogx(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x * x.clamp(min=1e-30).log2(), 0.0)


def js_distance(
    a: Float[torch.Tensor, "heads q k"], b: Float[torch.Tensor, "heads2 q k"]
) -> Float[torch.Tensor, "heads heads2"]:
    """Jensen-Shannon distance (base 2) between every head of ``a`` and of ``b``, row-averaged:
    JS = H((p + r) / 2) - (H(p) + H(r)) / 2 per query row, then sqrt and the mean over rows."""
    p, r = a.float(), b.float()
    h_p, h_r = -_xlogx(p).sum(-1), -_xlogx(r).sum(-1)  # [heads, q]
    h_m = -_xlogx((p[:, None] + r[None]) / 2).sum(-1)  # [heads, heads2, q]
    div = h_m - (h_p[:, None] + h_r[None]) / 2
    return div.clamp(min=0).sqrt().mean(-1)


def js_rows(n: int, most: int = JS_ROWS) -> list[int]:
    """The query rows the head similarity reads: all of 1..n-1 up to ``most``, else ``most``
    evenly spaced ones (row 0 attends only to itself in every head)."""
    rows = list(range(1, n)) or [0]
    if len(rows) <= most:
        return rows
    return sorted({rows[round(i * (len(rows) - 1) / (most - 1))] for i in range(most)})


def js_distance_matrix(
    heads: Float[torch.Tensor, "heads q k"], chunk: int = 16
) -> Float[torch.Tensor, "heads heads"]:
    """All-pairs JS distance of one prompt's heads over its ``js_rows``, ``chunk`` heads at a
    time (memory)."""
    heads = heads[:, js_rows(heads.shape[1])]
    rows = [js_distance(heads[i : i + chunk], heads) for i in range(0, heads.shape[0], chunk)]
    out = torch.cat(rows)
    return (out + out.T) / 2  # exact symmetry despite float rounding


@dataclass(frozen=True)
class HeadClusters:
    labels: list[int]  # cluster id per head (0-based, flattened layer-major)
    order: list[int]  # dendrogram leaf order, for drawing the matrix
    representatives: list[int]  # the medoid head of each cluster


def cluster_heads(distance: Float[torch.Tensor, "heads heads"], n_clusters: int) -> HeadClusters:
    """Average-linkage clusters of heads by distance; each cluster's medoid represents it."""
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    from scipy.spatial.distance import squareform

    d = distance.double().numpy().copy()
    n = d.shape[0]
    if n < 2:
        return HeadClusters([0] * n, list(range(n)), list(range(n)))
    d[range(n), range(n)] = 0.0
    tree = linkage(squareform(d, checks=False), method="average")
    labels = [int(x) - 1 for x in fcluster(tree, t=min(n_clusters, n), criterion="maxclust")]
    reps = []
    for c in sorted(set(labels)):
        members = [i for i, lab in enumerate(labels) if lab == c]
        reps.append(min(members, key=lambda i: float(d[i, members].sum())))
    return HeadClusters(labels, [int(x) for x in leaves_list(tree)], reps)
