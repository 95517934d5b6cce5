"""Edge-level interventions: run a model with chosen graph edges carrying ablated values.

The residual stream into an input channel v is the sum of the outputs o_u of every node u
before it (plus biases, which are never ablated). Ablating the edge u -> v replaces u's
contribution to v's input *only*, by its ablation value a_u (its output on the corrupted prompt,
its mean, or zero):

    x_v = (residual stream this run computes at v) + sum over ablated u->v of (a_u - o_u)

where o_u is u's output *in this same run*, so kept edges carry whatever u computes from its own
(possibly patched) inputs. With nothing ablated the run is the model's own forward; with every
edge into ``logits`` ablated the final residual stream is the corrupted run's.

How it is wired into a TransformerBridge (compatibility mode, layer norms folded into the
weights, which is what ``enable_compatibility_mode`` does): node outputs are read at
``blocks.0.hook_resid_pre`` (input), ``attn.hook_z @ W_O`` per head and ``hook_mlp_out``. Heads
need per-head inputs, which the native bridge cannot split (``set_use_split_qkv_input`` is not
supported there), so q, k and v are recomputed from per-head inputs at ``attn.hook_q/k/v``:
``norm(x_h) @ W_Q[h] + b_Q[h]`` (q/k/v hooks sit before any rotary embedding). MLPs are fed
``norm(x)`` at ``mlp.hook_in`` (after ln2), and ``logits`` gets ``x`` at ``ln_final.hook_in``.
A parallel block's MLP (GPT-NeoX, GPT-J) is fed ``norm(x)`` of its
own channel built on the layer's input. ``check_decomposition`` verifies that this reproduces the
model (run it once per model).

Several masks can be run in one batched forward ("copies"): the prompt batch is repeated once
per mask, copy c using ``ablate[c]``.

``run_from`` skips the layers an ablation cannot change: an ablated edge u -> v changes nothing
before v's layer, so copies whose masks agree on every edge into layers < L share one run up to
L. Given that run's residual stream entering block L and the outputs of the nodes before L
(``LayerStart``), it runs blocks L.. only (``BlockReplay``, with these hooks firing inside the
blocks) and returns the logits at each prompt's last position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

from analysis import hooks
from analysis.block_math import folded_norm, model_param
from analysis.circuits.graph import CircuitGraph, CircuitGraphError
from analysis.hook_context import fwd_hooks
from analysis.patching.replay import BlockReplay, stack_copies
from analysis.rotary import RotaryTables, record_position_embeddings

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

NodeValues = Float[torch.Tensor, "batch pos node d_model"]
AblateMask = Float[torch.Tensor, "copies node channel"]


@dataclass
class PatchedRun:
    """Logits of a patched run, every node's output, and (when recorded) channel inputs and
    attention patterns."""

    logits: Float[torch.Tensor, "copies_batch pos d_vocab"]
    outputs: Float[torch.Tensor, "copies_batch pos node d_model"]
    inputs: list[torch.Tensor] = field(default_factory=list)  # one [cb, pos, n, d] per group
    patterns: list[torch.Tensor] = field(default_factory=list)  # per layer [cb, head, q, k]
    rotary: RotaryTables | None = None  # (cos, sin) of rotary models, with the patterns
    resid: dict[str, torch.Tensor] = field(default_factory=dict)  # pre{L}, mid{L}, final


@dataclass(frozen=True)
class LayerStart:
    """What every copy of a run shares before layer ``layer``: the residual stream entering
    block ``layer`` (the input of the final norm when ``layer`` = n_layers) and the outputs of
    the nodes before it."""

    layer: int
    resid: Float[torch.Tensor, "batch pos d_model"]
    outputs: Float[torch.Tensor, "batch pos node_before d_model"]


@dataclass
class _RunState:
    copies: int
    ablated: torch.Tensor | None
    ablate: torch.Tensor | None
    record: bool
    record_patterns: bool = False
    chunks: list[torch.Tensor] = field(default_factory=list)
    resid: dict[str, torch.Tensor] = field(default_factory=dict)
    inputs: list[torch.Tensor] = field(default_factory=list)
    patterns: list[torch.Tensor] = field(default_factory=list)
    last: torch.Tensor | None = None  # replayed runs: the final norm sees these positions only
    shared: torch.Tensor | None = None  # replayed runs: outputs of the nodes before the replay


def _stack_param(model: TransformerBridge, name: str, shape_like: torch.Tensor) -> torch.Tensor:
    value = model_param(model, name)
    return torch.zeros_like(shape_like) if value is None else value


class EdgePatcher:
    """Runs a model with per-edge ablations on a fixed graph."""

    def __init__(self, model: TransformerBridge, graph: CircuitGraph) -> None:
        self.model, self.graph = model, graph
        cfg = model.cfg
        w_q, w_k = model.W_Q.detach(), model.W_K.detach()
        self.w = {"q": w_q, "k": w_k, "v": model.W_V.detach()}
        self.b = {k: _stack_param(model, f"b_{k.upper()}", self.w[k][..., 0, :]) for k in "qkv"}
        self.w_o = model.W_O.detach()
        if w_k.shape[1] != graph.n_kv_heads:
            raise CircuitGraphError(
                f"model has {w_k.shape[1]} key/value heads, the graph {graph.n_kv_heads}"
            )
        self.norm_type = getattr(cfg, "normalization_type", None)
        self.eps = float(getattr(cfg, "eps", 1e-5))
        self._groups = self._channel_groups()

    def _channel_groups(self) -> dict[tuple[int, str], tuple[int, int, int]]:
        """(layer, kind) -> (first channel, end channel, n_upstream)."""
        groups: dict[tuple[int, str], tuple[int, int, int]] = {}
        for i, ch in enumerate(self.graph.channels):
            key = (ch.layer, ch.kind)
            start = groups.get(key, (i, i, ch.n_upstream))[0]
            groups[key] = (start, i + 1, ch.n_upstream)
        return groups

    def channel_group(self, layer: int, kind: str) -> tuple[int, int, int]:
        """(first channel, end channel, n_upstream) of a layer's q, k, v, mlp or logits."""
        return self._groups[(layer, kind)]

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The weightless pre-norm the folded model applies (LN: centre + scale; RMS: scale)."""
        return folded_norm(x, self.norm_type, self.eps)

    def run(
        self,
        tokens: Int[torch.Tensor, "batch pos"],
        ablated: NodeValues | None = None,
        ablate: AblateMask | None = None,
        *,
        record_inputs: bool = False,
        record_patterns: bool = False,
        input_override: Float[torch.Tensor, "copies_batch pos d_model"] | None = None,
    ) -> PatchedRun:
        """One forward of ``copies`` stacked copies of ``tokens`` (copies = ablate.shape[0]).

        ``record_patterns`` keeps every layer's attention pattern (``hook_pattern``, as the
        model uses it, so gradients can be taken with respect to it) and, for rotary models,
        the (cos, sin) tables the blocks were given."""
        copies = 1 if ablate is None else int(ablate.shape[0])
        if ablate is not None and ablated is None:
            raise ValueError("an ablation mask needs the ablated node values")
        st = _RunState(copies, ablated, ablate, record_inputs, record_patterns)
        with (
            fwd_hooks(self.model, self._hooks(st, input_override)),
            record_position_embeddings(self.model if record_patterns else None) as tables,
        ):
            logits = self.model(tokens.repeat(copies, 1))
        outputs = torch.cat(st.chunks, dim=2)
        rotary = tables[0] if tables else None
        return PatchedRun(logits, outputs, st.inputs, st.patterns, rotary, st.resid)

    def n_nodes_before(self, layer: int) -> int:
        """Nodes that write into the residual stream before block ``layer``."""
        return 1 + layer * (self.graph.n_heads + int(self.graph.has_mlp))

    def start_at(self, run: PatchedRun, layer: int) -> LayerStart:
        """The ``LayerStart`` of ``layer`` from a run of one copy (``run``)."""
        key = "final" if layer == self.graph.n_layers else f"pre{layer}"
        outputs = run.outputs[:, :, : self.n_nodes_before(layer)]
        return LayerStart(layer, run.resid[key].detach(), outputs.detach())

    @staticmethod
    def detached(run: PatchedRun) -> PatchedRun:
        """The run's logits, node outputs and residual streams only, without autograd history."""
        resid = {k: v.detach() for k, v in run.resid.items()}
        return PatchedRun(run.logits.detach(), run.outputs.detach(), resid=resid)

    def run_from(
        self,
        start: LayerStart,
        replay: BlockReplay,
        ablated: NodeValues,
        ablate: AblateMask,
    ) -> Float[torch.Tensor, "copies_batch d_vocab"]:
        """Blocks ``start.layer..`` of ``copies`` runs that share ``start``; last-position logits.

        Exact when no mask ablates an edge into a layer before ``start.layer`` other than those
        ``start`` was computed with."""
        copies, n = int(ablate.shape[0]), replay.n_batch
        st = _RunState(copies, ablated, ablate, record=False, last=replay.last.repeat(copies))
        st.shared = start.outputs
        with fwd_hooks(self.model, self._hooks(st, None, first_layer=start.layer)):
            return replay.run_from(start.layer, copies, stack_copies(start.resid, n, copies))

    # ---- hooks ---------------------------------------------------------------------------
    def _hooks(
        self, st: _RunState, override: torch.Tensor | None, first_layer: int = 0
    ) -> list[tuple[str, Any]]:
        g = self.graph
        out: list[tuple[str, Any]] = []
        if first_layer == 0:
            out.append((hooks.resid_pre(0).name, self._input_hook(st, override)))
        for layer in range(first_layer, g.n_layers):
            out.append((hooks.resid_pre(layer).name, self._save_hook(st, f"pre{layer}")))
            for kind in ("q", "k", "v"):
                out.append((hooks.site(kind, layer).name, self._qkv_hook(st, layer, kind)))
            out.append((hooks.z(layer).name, self._z_hook(st, layer)))
            if st.record_patterns:
                out.append((hooks.site("pattern", layer).name, self._pattern_hook(st)))
            if g.has_mlp and not g.parallel:  # a parallel block's MLP reads pre{layer}
                out.append(
                    (hooks.site("resid_mid", layer).name, self._save_hook(st, f"mid{layer}"))
                )
            if g.has_mlp:
                out.append((hooks.site("mlp_in", layer).name, self._mlp_in_hook(st, layer)))
                out.append((hooks.site("mlp_out", layer).name, self._chunk_hook(st)))
        out.append((hooks.site("ln_final_in").name, self._logits_hook(st)))
        return out

    def _delta(self, st: _RunState, group: tuple[int, int, int]) -> torch.Tensor | None:
        """sum over ablated u->v of (a_u - o_u), [copies*batch, pos, n_channels, d_model].

        Only the upstream nodes some copy ablates an edge from are read; the outputs shared by
        every copy (``st.shared``, the nodes before a replay's first layer) are not repeated."""
        start, end, n_up = group
        if st.ablate is None or st.ablated is None:
            return None
        weight = st.ablate[:, :n_up, start:end]
        active = torch.nonzero(weight.any(2).any(0)).flatten()
        if not len(active):
            return None
        ablated = st.ablated[:, :, active]
        shared, own = self._outputs_of(st, active)
        if st.last is not None and group[0] == len(self.graph.channels) - 1:  # replayed logits
            n = ablated.shape[0]
            ablated = ablated[torch.arange(n), st.last[:n]][:, None]
            shared = None if shared is None else shared[torch.arange(n), st.last[:n]][:, None]
            own = None if own is None else own[torch.arange(own.shape[0]), st.last][:, None]
        b, pos, _, d = ablated.shape
        weight = weight[:, active].to(ablated.dtype)
        n_shared = 0 if shared is None else shared.shape[2]
        parts = []
        if shared is not None:
            diff = ablated[:, :, :n_shared] - shared
            parts.append(torch.einsum("bpud,cun->cbpnd", diff, weight[:, :n_shared]))
        if own is not None:
            own = own.view(st.copies, b, pos, -1, d)
            diff = ablated[None, :, :, n_shared:] - own
            parts.append(torch.einsum("cbpud,cun->cbpnd", diff, weight[:, n_shared:]))
        delta = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        return delta.reshape(st.copies * b, pos, end - start, d)

    @staticmethod
    def _outputs_of(
        st: _RunState, nodes: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Outputs of ``nodes`` (ascending): (those shared by every copy [batch, pos, a, d],
        the rest [copies*batch, pos, a, d])."""
        n_shared = 0 if st.shared is None else st.shared.shape[2]
        ids = nodes.tolist()
        first = [u for u in ids if u < n_shared]
        shared = st.shared[:, :, first] if st.shared is not None and first else None
        rest = [u - n_shared for u in ids if u >= n_shared]
        if not rest:
            return shared, None
        parts, offset = [], 0
        for chunk in st.chunks:
            k = chunk.shape[2]
            sel = [u - offset for u in rest if offset <= u < offset + k]
            if sel:
                parts.append(chunk if len(sel) == k else chunk[:, :, sel])
            offset += k
        return shared, (parts[0] if len(parts) == 1 else torch.cat(parts, dim=2))

    def _channel_input(self, st: _RunState, base: torch.Tensor, group: tuple) -> torch.Tensor:
        n = group[1] - group[0]
        x = base.unsqueeze(2).repeat(1, 1, n, 1)
        delta = self._delta(st, group)
        if delta is not None:
            x = x + delta
        if st.record:
            st.inputs.append(x)
        return x

    def _needs_recompute(self, st: _RunState, group: tuple[int, int, int]) -> bool:
        if st.record:
            return True
        if st.ablate is None:
            return False
        return bool(st.ablate[:, : group[2], group[0] : group[1]].any())

    def _input_hook(self, st: _RunState, override: torch.Tensor | None) -> Any:
        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            value = t if override is None else override.to(t.dtype)
            if st.record and torch.is_grad_enabled():
                # a leaf, so that every channel input is differentiable even when the
                # embeddings are a constant (EAP-IG) or the parameters are frozen
                value = value.detach().requires_grad_(True)
            st.chunks.append(value.unsqueeze(2))
            return value

        return hook

    def _save_hook(self, st: _RunState, key: str) -> Any:
        def hook(t: torch.Tensor, hook: Any) -> None:
            st.resid[key] = t

        return hook

    def _pattern_hook(self, st: _RunState) -> Any:
        def hook(t: torch.Tensor, hook: Any) -> None:
            st.patterns.append(t)

        return hook

    def _chunk_hook(self, st: _RunState) -> Any:
        def hook(t: torch.Tensor, hook: Any) -> None:
            st.chunks.append(t.unsqueeze(2))

        return hook

    def _qkv_hook(self, st: _RunState, layer: int, kind: str) -> Any:
        group = self._groups[(layer, kind)]

        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            if not self._needs_recompute(st, group):
                return t
            x = self._channel_input(st, st.resid[f"pre{layer}"], group)
            w, b = self.w[kind][layer], self.b[kind][layer]
            return torch.einsum("bpnd,nde->bpne", self.normalise(x), w) + b

        return hook

    def _z_hook(self, st: _RunState, layer: int) -> Any:
        def hook(t: torch.Tensor, hook: Any) -> None:
            st.chunks.append(torch.einsum("bphe,hed->bphd", t, self.w_o[layer]))

        return hook

    def _mlp_in_hook(self, st: _RunState, layer: int) -> Any:
        group = self._groups[(layer, "mlp")]

        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            if not self._needs_recompute(st, group):
                return t
            base = st.resid[f"pre{layer}" if self.graph.parallel else f"mid{layer}"]
            x = self._channel_input(st, base, group)
            return self.normalise(x[:, :, 0])

        return hook

    def _logits_hook(self, st: _RunState) -> Any:
        group = self._groups[(self.graph.n_layers, "logits")]

        def hook(t: torch.Tensor, hook: Any) -> torch.Tensor:
            st.resid["final"] = t
            if not self._needs_recompute(st, group):
                return t
            return self._channel_input(st, t, group)[:, :, 0]

        return hook


def check_decomposition(
    patcher: EdgePatcher, tokens: Int[torch.Tensor, "batch pos"], atol: float = 1e-4
) -> float:
    """Max |logits| difference between the recomputed (edge-decomposed) and the plain forward.

    Raises ``CircuitGraphError`` when the decomposition does not reproduce the model, which
    happens when layer norms are not folded (call ``enable_compatibility_mode()``) or the
    architecture computes q/k/v differently from ``norm(x) @ W + b``.
    """
    with torch.no_grad():
        plain = patcher.model(tokens)
        rebuilt = patcher.run(tokens, record_inputs=True).logits
    err = float((plain - rebuilt).abs().max())
    scale = max(1.0, float(plain.abs().max()))
    if err > atol * scale:
        raise CircuitGraphError(
            f"the edge-decomposed forward differs from the model by {err:.3g} in the logits; "
            "circuit discovery needs a TransformerBridge in compatibility mode "
            "(enable_compatibility_mode(), which folds the layer norms into the weights)"
        )
    return err
