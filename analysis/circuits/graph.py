"""The computational graph that circuit discovery scores: nodes, input channels and edges.

Nodes (component outputs written into the residual stream), in topological order:
``input`` (token + position embeddings, i.e. ``blocks.0.hook_resid_pre``), then per layer L the
heads ``a{L}.h{H}`` (each head's ``z @ W_O``) and, unless the model is attention-only, the MLP
``m{L}``; plus the sink ``logits``.

Edge targets are *input channels*: each head reads its query, key and value input separately
(``a{L}.h{H}<q>``, ``<k>``, ``<v>``), each MLP reads ``m{L}`` and the unembedding reads
``logits``. The residual stream into a channel is the sum of the outputs of every node before it
(plus biases, which no intervention touches), so every earlier node has one edge into it:
heads of layer L read ``input`` and all heads and MLPs of layers < L; ``m{L}`` also reads the
heads of layer L; ``logits`` reads every node.

Parallel attention and MLP (GPT-NeoX / Pythia, GPT-J: ``cfg.parallel_attn_mlp``): a block
computes ``x + attn(norm(x)) + mlp(norm(x))``, so ``m{L}`` reads the layer's input, like the
heads of layer L, and *not* the heads of layer L. Nodes, channels and names are the same; only
the MLP channels have fewer upstream nodes.

Grouped-query attention: keys and values are computed once per key/value head, shared by
``n_heads / n_kv_heads`` query heads, so their channels are per KV head and named
``a{L}.kv{G}<k>`` / ``a{L}.kv{G}<v>`` (G = KV head index). Without GQA they are named per head
as above. A KV channel belongs to every query head of its group.

Edge order (the index of every per-edge tensor): by target in channel order, then by source in
node order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

ChannelKind = Literal["q", "k", "v", "mlp", "logits"]
INPUT, LOGITS = "input", "logits"
_HEAD_RE = re.compile(r"^a(\d+)\.h(\d+)$")
_MLP_RE = re.compile(r"^m(\d+)$")


class CircuitGraphError(ValueError):
    """The model or a name does not fit the circuit graph; the message says what to change."""


@dataclass(frozen=True)
class Channel:
    """One input channel: ``index`` is the head (q), KV head (k, v) or 0 (mlp, logits)."""

    name: str
    layer: int  # n_layers for logits
    kind: ChannelKind
    index: int
    n_upstream: int  # the first n_upstream nodes write into it


@dataclass(frozen=True)
class CircuitGraph:
    n_layers: int
    n_heads: int
    n_kv_heads: int
    has_mlp: bool
    parallel: bool = False  # MLP L reads the layer's input (resid_pre), not the heads of L
    nodes: tuple[str, ...] = field(init=False)
    channels: tuple[Channel, ...] = field(init=False)
    edges: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise CircuitGraphError(
                f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}"
            )
        nodes, channels = [INPUT], []
        for layer in range(self.n_layers):
            n_up = len(nodes)
            channels += [Channel(self.head_channel(layer, h, "q"), layer, "q", h, n_up)
                         for h in range(self.n_heads)]  # fmt: skip
            for kind in ("k", "v"):
                channels += [Channel(self.head_channel(layer, g, kind), layer, kind, g, n_up)
                             for g in range(self.n_kv_heads)]  # fmt: skip
            nodes += [f"a{layer}.h{h}" for h in range(self.n_heads)]
            if self.has_mlp:
                mlp_up = n_up if self.parallel else len(nodes)
                channels.append(Channel(f"m{layer}", layer, "mlp", 0, mlp_up))
                nodes.append(f"m{layer}")
        channels.append(Channel(LOGITS, self.n_layers, "logits", 0, len(nodes)))
        edges = [(nodes[u], ch.name) for ch in channels for u in range(ch.n_upstream)]
        object.__setattr__(self, "nodes", tuple(nodes))
        object.__setattr__(self, "channels", tuple(channels))
        object.__setattr__(self, "edges", tuple(edges))

    # ---- naming -------------------------------------------------------------------------
    @property
    def gqa(self) -> bool:
        return self.n_kv_heads != self.n_heads

    def head_channel(self, layer: int, index: int, kind: str) -> str:
        if kind in ("k", "v") and self.gqa:
            return f"a{layer}.kv{index}<{kind}>"
        return f"a{layer}.h{index}<{kind}>"

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def node_index(self, name: str) -> int:
        try:
            return self._node_pos[name]
        except KeyError:
            raise CircuitGraphError(f"no node {name!r} in this model's graph") from None

    def channel_index(self, name: str) -> int:
        try:
            return self._channel_pos[name]
        except KeyError:
            raise CircuitGraphError(f"no input channel {name!r} in this model's graph") from None

    def edge_index(self, source: str, target: str) -> int:
        try:
            return self._edge_pos[(source, target)]
        except KeyError:
            raise CircuitGraphError(
                f"no edge {source} -> {target} in this model's graph (a source must be an "
                "earlier node; targets are a{L}.h{H}<q|k|v>, m{L} or logits)"
            ) from None

    def channel_owners(self, channel: Channel) -> list[str]:
        """The node(s) whose computation reads this channel (all query heads of a KV group)."""
        if channel.kind == "logits":
            return [LOGITS]
        if channel.kind == "mlp":
            return [f"m{channel.layer}"]
        if channel.kind == "q" or not self.gqa:
            return [f"a{channel.layer}.h{channel.index}"]
        group = self.n_heads // self.n_kv_heads
        heads = range(channel.index * group, (channel.index + 1) * group)
        return [f"a{channel.layer}.h{h}" for h in heads]

    # ---- index tensors ------------------------------------------------------------------
    @cached_property
    def edge_source(self) -> torch.Tensor:
        return torch.tensor([self._node_pos[s] for s, _ in self.edges], dtype=torch.long)

    @cached_property
    def edge_target(self) -> torch.Tensor:
        return torch.tensor([self._channel_pos[t] for _, t in self.edges], dtype=torch.long)

    def dense(self, per_edge: torch.Tensor) -> torch.Tensor:
        """[..., edge] -> [..., node, channel], zero where there is no edge."""
        out = per_edge.new_zeros(*per_edge.shape[:-1], len(self.nodes), len(self.channels))
        out[..., self.edge_source, self.edge_target] = per_edge
        return out

    @cached_property
    def _node_pos(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.nodes)}

    @cached_property
    def _channel_pos(self) -> dict[str, int]:
        return {c.name: i for i, c in enumerate(self.channels)}

    @cached_property
    def _edge_pos(self) -> dict[tuple[str, str], int]:
        return {edge: i for i, edge in enumerate(self.edges)}


def node_layer_head(name: str) -> tuple[int | None, int | None]:
    """(layer, head) of a node name: heads (L, H), MLPs (L, None), input/logits (None, None)."""
    if match := _HEAD_RE.match(name):
        return int(match[1]), int(match[2])
    if match := _MLP_RE.match(name):
        return int(match[1]), None
    if name in (INPUT, LOGITS):
        return None, None
    raise CircuitGraphError(f"{name!r} is not a node name (input, a{{L}}.h{{H}}, m{{L}}, logits)")


def graph_for_model(model: TransformerBridge) -> CircuitGraph:
    """The graph of a TransformerBridge (or any model with a TransformerLens-style ``cfg``).

    Refused (``CircuitGraphError``) for blocks that normalise their attention and MLP outputs
    (Gemma-2/3), where the residual stream is not the sum of the nodes' outputs."""
    from analysis.models import sandwich_norms

    cfg = model.cfg
    if sandwich_norms(model):
        raise CircuitGraphError(
            f"{getattr(cfg, 'architecture', 'this model')}: circuit discovery needs each head's "
            "write into the residual stream to be z @ W_O; this model normalises the attention "
            "and MLP outputs before adding them (post-attention/post-MLP norms, Gemma-2 style)"
        )
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return CircuitGraph(
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        has_mlp=not bool(getattr(cfg, "attn_only", False)),
        parallel=bool(getattr(cfg, "parallel_attn_mlp", False)),
    )
