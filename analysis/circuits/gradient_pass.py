"""The gradient runs of EAP and EAP-IG: one forward and one backward of the clean prompts that
give d metric / d (every channel input) and d metric / d (every attention pattern).

In these runs the channels of one group (a layer's queries, keys, values, its MLP, the logits)
all read the *same* input: nothing is ablated (EAP's clean run, EAP-IG's ``inputs`` path, which
only replaces the embeddings), or every edge carries the same fraction f of its ablation
(EAP-IG's ``edges`` path), so every channel of the group reads

    x = (residual stream at the group) + f * sum over its upstream nodes u of (a_u - o_u).

``EdgePatcher.run(record_inputs=True)`` builds one copy of that input per channel
([batch, pos, channel, d_model]) and recomputes every head's q, k and v from its copy, so that
autograd can give each channel's gradient; ``gradient_pass`` records one tensor per group
instead and derives the per-channel gradients from the projections':

- q, k, v: the model's own q/k/v (``attn.hook_q/k/v``, before any rotary embedding) are used as
  they are; with an ablated fraction the model computes them from the shared input, given to
  its attention's pre-norm (``ln1.hook_in``, which does not feed the residual stream; where a
  model has no such hook, ``norm(x) @ W + b`` is computed here for all heads in one matmul).
  With g_h = d metric / d q_h, the gradient w.r.t. head h's query input is
  ``J_norm(x)^T (g_h @ W_Q[h]^T)`` (J_norm: the Jacobian of the folded pre-norm at x, applied
  in closed form), one small matmul per kind and layer after the backward;
- the sum f * sum_u (a_u - o_u) is kept as running prefix sums over the nodes as their outputs
  appear, so no group concatenates the node outputs;
- MLP and logits channels are single channels: their input is recorded as it is.

The numbers equal ``EdgePatcher``'s recording run (``gradient_run_reference``; the tests
compare every channel input, gradient, node output and pattern gradient).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from jaxtyping import Float, Int

from analysis import hooks
from analysis.circuits.intervention import EdgePatcher, NodeValues, PatchedRun
from analysis.hook_context import fwd_hooks, hook_points
from analysis.rotary import RotaryTables, record_position_embeddings

Metric = Callable[[torch.Tensor], torch.Tensor]  # logits [batch, pos, vocab] -> scalar


@dataclass(eq=False)
class ChannelGroup:
    """One group of input channels at a gradient run: channels ``start..end-1`` of
    ``layer``'s ``kind`` (q, k, v, mlp, logits), fed by the first ``n_up`` nodes. The
    gradients of a q/k/v group are computed from its projection's on first use (the QK fix
    never needs those of q and k)."""

    layer: int
    kind: str
    start: int
    end: int
    n_up: int
    inputs: Float[torch.Tensor, "batch pos n_or_1 d_model"]  # one shared input, or one each
    # q/k/v groups of a gradient_pass: norm(x) @ W + b as the run computed it (before rotary)
    projection: Float[torch.Tensor, "batch pos n d_head"] | None = None
    _channel_major: torch.Tensor | None = field(default=None, repr=False)
    _make: Callable[[], torch.Tensor] | None = field(default=None, repr=False)

    @property
    def shared(self) -> bool:
        return self.inputs.shape[2] == 1

    @property
    def channel_major(self) -> Float[torch.Tensor, "n batch pos d_model"]:
        """d metric / d (each channel's input), contiguous channel-major."""
        if self._channel_major is None:
            assert self._make is not None
            self._channel_major, self._make = self._make(), None
        return self._channel_major

    @property
    def grads(self) -> Float[torch.Tensor, "batch pos n d_model"]:
        return self.channel_major.permute(1, 2, 0, 3)


@dataclass(eq=False)
class GradientRun:
    """One run on the clean prompts with d metric / d (every channel input, every attention
    pattern), and what the run computed (detached)."""

    groups: list[ChannelGroup]  # in channel order
    outputs: NodeValues
    patterns: list[torch.Tensor]  # per layer [batch, head, q, k]
    pattern_grads: list[torch.Tensor]
    metric: float
    rotary: RotaryTables | None = None  # rotary models: the (cos, sin) the blocks were given
    _by_key: dict[tuple[int, str], ChannelGroup] = field(default_factory=dict, repr=False)

    def group(self, layer: int, kind: str) -> ChannelGroup:
        if not self._by_key:
            self._by_key.update({(g.layer, g.kind): g for g in self.groups})
        return self._by_key[(layer, kind)]

    @property
    def input_grads(self) -> Float[torch.Tensor, "batch pos channel d_model"]:
        """d metric / d (input of every channel), in the graph's channel order."""
        return torch.cat([g.channel_major for g in self.groups]).permute(1, 2, 0, 3)

    @cached_property
    def inputs(self) -> Float[torch.Tensor, "batch pos channel d_model"]:
        """Every channel's input (a shared input repeated over its group's channels)."""
        return torch.cat([g.inputs.expand(-1, -1, g.end - g.start, -1) for g in self.groups], dim=2)


def projected_grads(
    patcher: EdgePatcher,
    x: Float[torch.Tensor, "batch pos d_model"],
    grad: Float[torch.Tensor, "batch pos n d_head"],
    w: Float[torch.Tensor, "n d_model d_head"],
    unbiased: Float[torch.Tensor, "batch pos n d_head"],
) -> Float[torch.Tensor, "n batch pos d_model"]:
    """d metric / d x for n projections ``norm(x) @ w[n] + b[n]`` of one input x, given
    ``grad`` = d metric / d (each projection) and ``unbiased`` = norm(x) @ w[n]: with
    G = (grad / s) @ w[n]^T, LN gives G - mean(G) - y mean(G y) (y = norm(x)), RMS
    G - y mean(G y), no norm grad @ w[n]^T, with s = sqrt(mean(c(x)^2) + eps) (c: the
    centring of LN); the means come from
    d_head-sized dot products, mean(G y) = (grad / s) . unbiased / d_model."""
    n, (b, p, d) = w.shape[0], x.shape
    if patcher.norm_type is None:
        return torch.bmm(grad.reshape(b * p, n, -1).transpose(0, 1), w.transpose(1, 2)).view(
            n, b, p, d
        )
    centre = patcher.norm_type in ("LN", "LNPre")
    c = x - x.mean(-1, keepdim=True) if centre else x
    scale = (c.pow(2).mean(-1, keepdim=True) + patcher.eps).sqrt()  # [b, p, 1]
    scaled = grad / scale[..., None]  # [b, p, n, e]
    out = torch.bmm(scaled.reshape(b * p, n, -1).transpose(0, 1), w.transpose(1, 2))  # [n, bp, d]
    y = (c / scale).reshape(1, b * p, d)
    dot = (scaled * unbiased).sum(-1).div_(d).reshape(b * p, n).T  # [n, bp]
    out.addcmul_(y, dot[..., None], value=-1.0)
    if centre:
        mean = torch.einsum("bpne,ne->nbp", scaled, w.mean(1)).reshape(n, b * p, 1)
        out.sub_(mean)
    return out.view(n, b, p, d)


@dataclass
class _State:
    fraction: float
    ablated: NodeValues | None
    override: torch.Tensor | None
    chunks: list[torch.Tensor] = field(default_factory=list)  # node outputs, detached
    running: torch.Tensor | None = None  # sum of the node outputs so far (with autograd)
    prefix: dict[int, torch.Tensor] = field(default_factory=dict)  # n nodes -> their sum
    n_nodes: int = 0
    ablated_sums: dict[int, torch.Tensor] = field(default_factory=dict)  # n -> sum of a_u, u < n
    resid: dict[str, torch.Tensor] = field(default_factory=dict)
    # layer -> (q/k/v input x, norm(x) when q/k/v are recomputed from it here)
    qkv_input: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)
    projections: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    single: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)  # mlp, logits
    patterns: list[torch.Tensor] = field(default_factory=list)

    @property
    def ablating(self) -> bool:
        return self.fraction != 0.0


class _Pass:
    def __init__(self, patcher: EdgePatcher, st: _State) -> None:
        self.patcher, self.st = patcher, st

    def add_nodes(self, out: torch.Tensor) -> None:
        """Node outputs [b, p, n, d] (with autograd) appear in node order."""
        st = self.st
        st.chunks.append(out.detach())
        st.n_nodes += out.shape[2]
        if st.ablating:
            total = out.sum(2)
            st.running = total if st.running is None else st.running + total
            st.prefix[st.n_nodes] = st.running

    def shift(self, n_up: int) -> torch.Tensor | None:
        """f * sum over the first n_up nodes of (a_u - o_u), or None when nothing is ablated."""
        st = self.st
        if not st.ablating:
            return None
        return st.fraction * (self.ablated_sum(n_up) - st.prefix[n_up])

    def ablated_sum(self, n_up: int) -> torch.Tensor:
        """sum of a_u over the first n_up nodes [b, p, d], each from the largest sum kept so
        far below it (channels ask in node order, so the ablation values are read once)."""
        st = self.st
        assert st.ablated is not None
        if n_up not in st.ablated_sums:
            below = max((n for n in st.ablated_sums if n < n_up), default=0)
            part = st.ablated[:, :, below:n_up].sum(2)
            st.ablated_sums[n_up] = part + st.ablated_sums[below] if below else part
        return st.ablated_sums[n_up]

    def hooks(self) -> list[tuple[str, Any]]:
        g, names = self.patcher.graph, hook_points(self.patcher.model)
        out: list[tuple[str, Any]] = [(hooks.resid_pre(0).name, self.input_hook)]
        for layer in range(g.n_layers):
            out.append((hooks.resid_pre(layer).name, self.save(f"pre{layer}")))
            ln1 = hooks.site("ln1_in", layer).name
            if self.st.ablating and ln1 in names:  # the model computes q/k/v from x itself
                out.append((ln1, self.ln1_hook(layer)))
            for kind in ("q", "k", "v"):
                out.append((hooks.site(kind, layer).name, self.qkv_hook(layer, kind)))
            out.append((hooks.z(layer).name, self.z_hook(layer)))
            out.append((hooks.site("pattern", layer).name, self.pattern_hook))
            if g.has_mlp and not g.parallel:
                out.append((hooks.site("resid_mid", layer).name, self.save(f"mid{layer}")))
            if g.has_mlp:
                out.append((hooks.site("mlp_in", layer).name, self.mlp_in_hook(layer)))
                out.append((hooks.site("mlp_out", layer).name, self.mlp_out_hook))
        out.append((hooks.site("ln_final_in").name, self.logits_hook))
        return out

    def input_hook(self, t: torch.Tensor, hook: Any) -> torch.Tensor:
        value = t if self.st.override is None else self.st.override.to(t.dtype)
        # a leaf, so that every channel input is differentiable even when the embeddings are a
        # constant (EAP-IG) or the parameters are frozen
        value = value.detach().requires_grad_(True)
        self.add_nodes(value.unsqueeze(2))
        return value

    def save(self, key: str) -> Any:
        def hook(t: torch.Tensor, hook: Any) -> None:
            self.st.resid[key] = t

        return hook

    def pattern_hook(self, t: torch.Tensor, hook: Any) -> None:
        self.st.patterns.append(t)

    def ln1_hook(self, layer: int) -> Any:
        n_up = self.patcher.channel_group(layer, "q")[2]

        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            shift = self.shift(n_up)
            x = t if shift is None else t + shift
            self.st.qkv_input[layer] = (x, None)
            return x

        return hook

    def qkv_hook(self, layer: int, kind: str) -> Any:
        patcher, st = self.patcher, self.st
        n_up = patcher.channel_group(layer, kind)[2]

        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            if layer not in st.qkv_input:  # nothing ablated, or no ln1 hook to shift x at
                x = st.resid[f"pre{layer}"]
                shift = self.shift(n_up)
                x = x if shift is None else x + shift
                st.qkv_input[layer] = (x, patcher.normalise(x) if st.ablating else None)
            normed = st.qkv_input[layer][1]
            if normed is not None:  # the model's q/k/v saw the residual stream, not x
                w, b = patcher.w[kind][layer], patcher.b[kind][layer]
                t = torch.einsum("bpd,nde->bpne", normed, w) + b
            st.projections[(layer, kind)] = t
            return t

        return hook

    def z_hook(self, layer: int) -> Any:
        def hook(t: torch.Tensor, hook: Any) -> None:
            with torch.set_grad_enabled(self.st.ablating):  # o_u enters later inputs then only
                self.add_nodes(torch.einsum("bphe,hed->bphd", t, self.patcher.w_o[layer]))

        return hook

    def mlp_in_hook(self, layer: int) -> Any:
        n_up = self.patcher.channel_group(layer, "mlp")[2]

        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            base = self.st.resid[f"pre{layer}" if self.patcher.graph.parallel else f"mid{layer}"]
            shift = self.shift(n_up)
            x = base.clone() if shift is None else base + shift
            self.st.single[(layer, "mlp")] = x
            return self.patcher.normalise(x)

        return hook

    def mlp_out_hook(self, t: torch.Tensor, hook: Any) -> None:
        self.add_nodes(t.unsqueeze(2))

    def logits_hook(self, t: torch.Tensor, hook: Any) -> torch.Tensor:
        self.st.resid["final"] = t
        shift = self.shift(self.st.n_nodes)
        x = t.clone() if shift is None else t + shift
        self.st.single[(self.patcher.graph.n_layers, "logits")] = x
        return x


def gradient_pass(
    patcher: EdgePatcher,
    tokens: Int[torch.Tensor, "batch pos"],
    metric: Metric,
    *,
    ablated: NodeValues | None = None,
    fraction: float = 0.0,
    input_override: Float[torch.Tensor, "batch pos d_model"] | None = None,
) -> tuple[GradientRun, PatchedRun]:
    """One forward and backward of ``tokens`` in which every edge carries ``fraction`` of its
    ablation (``ablated``: the a_u; 0 = the clean run), with the input embeddings replaced by
    ``input_override`` if given. Returns the gradients and the run's logits, node outputs and
    residual streams (detached, as ``EdgePatcher.detached``)."""
    if fraction != 0.0 and ablated is None:
        raise ValueError("an ablated fraction needs the ablated node values")
    st = _State(float(fraction), ablated, input_override)
    p = _Pass(patcher, st)
    with torch.enable_grad():
        with (
            fwd_hooks(patcher.model, p.hooks()),
            record_position_embeddings(patcher.model) as tables,
        ):
            logits = patcher.model(tokens)
        value = metric(logits)
        graph, keys = patcher.graph, list(st.projections)
        singles = list(st.single)
        wrt = [st.projections[k] for k in keys] + [st.single[k] for k in singles]
        grads = torch.autograd.grad(value, wrt + st.patterns)
    by_key = dict(zip(keys + singles, grads[: len(wrt)], strict=True))
    groups = []
    for layer, kind in _group_order(patcher):
        start, end, n_up = patcher.channel_group(layer, kind)
        if kind in ("q", "k", "v"):
            x = st.qkv_input[layer][0].detach()
            projection = st.projections[(layer, kind)].detach()
            unbiased = projection - patcher.b[kind][layer]
            make = functools.partial(
                projected_grads, patcher, x, by_key[(layer, kind)], patcher.w[kind][layer], unbiased
            )
            groups.append(
                ChannelGroup(layer, kind, start, end, n_up, x[:, :, None], projection, _make=make)
            )
        else:
            x, grad = st.single[(layer, kind)].detach(), by_key[(layer, kind)][None]
            groups.append(ChannelGroup(layer, kind, start, end, n_up, x[:, :, None], None, grad))
    outputs = torch.cat(st.chunks, dim=2)
    run = GradientRun(
        groups=groups,
        outputs=outputs,
        patterns=[a.detach() for a in st.patterns],
        pattern_grads=list(grads[len(wrt) :]),
        metric=float(value.detach()),
        rotary=tables[0] if tables else None,
    )
    resid = {k: v.detach() for k, v in st.resid.items()}
    assert len(groups) == len({(c.layer, c.kind) for c in graph.channels})
    return run, PatchedRun(logits.detach(), outputs, resid=resid)


def _group_order(patcher: EdgePatcher) -> list[tuple[int, str]]:
    seen: dict[tuple[int, str], None] = {}
    for ch in patcher.graph.channels:
        seen.setdefault((ch.layer, ch.kind), None)
    return list(seen)


def gradient_run_reference(
    run: PatchedRun, value: torch.Tensor, patcher: EdgePatcher
) -> GradientRun:
    """The gradients of a run recorded by ``EdgePatcher.run(record_inputs=True,
    record_patterns=True)`` (one input per channel), as a ``GradientRun``."""
    grads = torch.autograd.grad(value, run.inputs + run.patterns)
    n = len(run.inputs)
    groups = []
    for (layer, kind), x, g in zip(_group_order(patcher), run.inputs, grads[:n], strict=True):
        start, end, n_up = patcher.channel_group(layer, kind)
        grad = g.detach().permute(2, 0, 1, 3).contiguous()
        groups.append(ChannelGroup(layer, kind, start, end, n_up, x.detach(), None, grad))
    return GradientRun(
        groups=groups,
        outputs=run.outputs.detach(),
        patterns=[p.detach() for p in run.patterns],
        pattern_grads=[g.detach() for g in grads[n:]],
        metric=float(value.detach()),
        rotary=run.rotary,
    )
