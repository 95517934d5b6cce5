"""Path patching from sender heads into receivers: a fast batched path and its exact twin.

A *path* is one sender head and a set of receiver input channels (query, key or value inputs
of later heads, or the logits). Patching it (Wang et al. 2022, the IOI paper's path patching)
means: the sender's output comes from the *source* run, every other head and MLP is frozen to
the *base* run, and only the receivers see the patched sender; everything downstream of the
receivers is then recomputed. ``noising`` (default): base = clean prompts, source = corrupted;
``denoising``: the reverse.

Because all other components are frozen, a receiver's input in the patched run is its base
input plus the sender's (source − base) output: exactly the graph edge ``sender → receiver``
ablated with the source values and every other edge kept. Three implementations:

- ``fast`` (the default): that input computed directly, ``norm(x_base + Δ_sender) @ W + b``
  for a receiver's q/k/v; a path into the logits needs only the final norm and unembedding at
  the metric positions (no forward at all), a path into heads replays the base run from the
  first receiver's layer (``analysis.patching.replay.BlockReplay``: no earlier layer is
  recomputed) with those activations set, many paths stacked as copies of the batch per call;
- ``fast_edges``: ``EdgePatcher`` (analysis/circuits/intervention.py) with one edge mask per
  path, many paths stacked per full forward — what ``fast`` falls back to on a model the
  block replay cannot reproduce;
- ``exact``: TransformerLens-style hooked passes per path on the model itself (as ARENA's
  ``get_path_patch_head_to_heads``): run the base prompts with the sender's ``hook_z`` from the
  source run and every other ``hook_z`` / ``hook_mlp_out`` frozen to the base run, record the
  receivers' ``hook_q/k/v`` (or read the logits when the receiver is ``logits``), then run the
  base prompts again with only those activations patched in. The freezing hooks are
  ``analysis.zoo.probes``' (the zoo's mean-ablation path probe uses the same ones).

Effects are the prompt-set mean metric of the patched run ``m`` normalised as the patching runs
do, relative to the base run: ``(m − m_base) / (m_clean − m_corrupt)``. Noising: 0 = no effect,
−1 = the whole clean → corrupted change; denoising: +1 = all of it restored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

from analysis import hooks
from analysis.circuits.graph import LOGITS, CircuitGraph, graph_for_model
from analysis.circuits.intervention import EdgePatcher
from analysis.metrics import MetricBaseline, last_logits, metric_baseline, metric_per_prompt
from analysis.patching.replay import BlockReplay, final_logits
from analysis.prompt_batch import PairBatch
from analysis.zoo.probes import cache_hooks, freeze_hooks, hooks_between, position_patch_hook

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

Direction = Literal["noising", "denoising"]
Progress = Callable[[float, str], None]
# stacked copies per batched forward: at most this many floats in the node outputs
_COPY_BUDGET = 150_000_000


class PathPatchError(ValueError):
    """A sender or receiver does not fit the model; the message names it and the fix."""


@dataclass(frozen=True)
class PatchPath:
    """One sender head into a set of receiver input channels (graph channel names)."""

    sender: str
    channels: tuple[str, ...]


@dataclass
class PathCounter:
    forwards: int = 0  # model calls
    prompt_batches: int = 0  # prompt-batch forward equivalents (a call with c copies counts c)

    def add(self, copies: int = 1) -> None:
        self.forwards += 1
        self.prompt_batches += copies


def _parse_head(name: str, graph: CircuitGraph, what: str) -> tuple[int, int]:
    parts = name.split(".")
    try:
        layer, head = int(parts[0][1:]), int(parts[1][1:])
        assert len(parts) == 2 and parts[0][0] == "a" and parts[1][0] == "h"
    except (IndexError, ValueError, AssertionError):
        raise PathPatchError(f"{what} {name!r} is not a head name a{{L}}.h{{H}}") from None
    if not (0 <= layer < graph.n_layers and 0 <= head < graph.n_heads):
        raise PathPatchError(
            f"{what} {name} is not a head of this model: it has layers 0-{graph.n_layers - 1} "
            f"and heads 0-{graph.n_heads - 1} per layer (a0.h0 … a{graph.n_layers - 1}."
            f"h{graph.n_heads - 1})"
        )
    return layer, head


def check_heads(graph: CircuitGraph, names: Sequence[str], what: str) -> None:
    for name in names:
        _parse_head(name, graph, what)


def receiver_channel(graph: CircuitGraph, receiver: str, kind: str) -> str:
    """The graph channel of a receiver head's q/k/v input (its KV head's, grouped-query k/v),
    or ``logits``."""
    if receiver == LOGITS:
        return LOGITS
    layer, head = _parse_head(receiver, graph, "receiver")
    index = head // (graph.n_heads // graph.n_kv_heads) if kind in ("k", "v") else head
    return graph.head_channel(layer, index, kind)


def reaches(graph: CircuitGraph, sender: str, channel: str) -> bool:
    """Whether ``sender`` writes into ``channel`` (the channel is in a later layer)."""
    ch = graph.channels[graph.channel_index(channel)]
    return graph.node_index(sender) < ch.n_upstream


@dataclass
class PathPatcher:
    """Clean and corrupted runs done once; paths patched by the fast or the exact method."""

    model: TransformerBridge
    batch: PairBatch
    metric: str
    direction: Direction
    graph: CircuitGraph
    patcher: EdgePatcher
    baseline: MetricBaseline
    clean_last: torch.Tensor
    base_metric: float
    source_outputs: torch.Tensor
    base_outputs: torch.Tensor
    counter: PathCounter = field(default_factory=PathCounter)
    _replay: BlockReplay | None = None
    _final_last: torch.Tensor | None = None  # the base run's final residual, last positions

    @classmethod
    def build(
        cls, model: TransformerBridge, batch: PairBatch, metric: str, direction: Direction
    ) -> PathPatcher:
        if direction not in ("noising", "denoising"):
            raise ValueError(f"direction must be noising or denoising, not {direction!r}")
        graph = graph_for_model(model)
        patcher = EdgePatcher(model, graph)
        with torch.no_grad():
            clean = patcher.run(batch.clean)
            corrupt = patcher.run(batch.corrupted)
        clean_last = last_logits(clean.logits, batch.last)
        corrupt_last = last_logits(corrupt.logits, batch.last)
        baseline = metric_baseline(metric, clean_last, corrupt_last, batch)
        baseline.normalise(torch.zeros(1))  # raises MetricUndefined on a zero denominator
        noising = direction == "noising"
        out = cls(
            model=model, batch=batch, metric=metric, direction=direction, graph=graph,
            patcher=patcher, baseline=baseline, clean_last=clean_last,
            base_metric=baseline.clean if noising else baseline.corrupt,
            source_outputs=(corrupt if noising else clean).outputs,
            base_outputs=(clean if noising else corrupt).outputs,
        )  # fmt: skip
        out.counter.add()
        out.counter.add()
        return out

    @property
    def base_tokens(self) -> torch.Tensor:
        return self.batch.clean if self.direction == "noising" else self.batch.corrupted

    @property
    def source_tokens(self) -> torch.Tensor:
        return self.batch.corrupted if self.direction == "noising" else self.batch.clean

    def mean_metric(self, logits: torch.Tensor, copies: int = 1) -> torch.Tensor:
        """Prompt-set mean metric of each stacked copy of the batch."""
        last = last_logits(logits, self.batch.last.repeat(copies))
        values = metric_per_prompt(self.metric, last, self.batch, self.clean_last)
        return values.view(copies, -1).mean(1)

    def normalise(self, metrics: torch.Tensor) -> torch.Tensor:
        """``(m − m_base) / (m_clean − m_corrupt)``."""
        return (metrics - self.base_metric) / self.baseline.denominator

    # ---- fast: one edge mask per path, stacked as copies --------------------------------
    def chunk_size(self) -> int:
        b, pos = self.batch.clean.shape
        per_copy = b * pos * len(self.graph.nodes) * int(self.model.cfg.d_model)
        return max(1, min(64, _COPY_BUDGET // max(1, per_copy)))

    def fast_edges(
        self, paths: Sequence[PatchPath], progress: Progress | None = None
    ) -> torch.Tensor:
        """Mean metric of each path by edge masks, many paths per batched full forward."""
        g = self.graph
        # paths into the same channel groups share chunks: a forward recomputes only the q, k,
        # v (or logits) groups that one of its copies patches
        order = sorted(range(len(paths)), key=lambda i: self._groups(paths[i]))
        ordered = [paths[i] for i in order]
        out: list[torch.Tensor] = []
        chunk = self.chunk_size()
        with torch.no_grad():
            for start in range(0, len(ordered), chunk):
                part = ordered[start : start + chunk]
                masks = torch.zeros(len(part), len(g.nodes), len(g.channels))
                for i, path in enumerate(part):
                    u = g.node_index(path.sender)
                    for channel in path.channels:
                        masks[i, u, g.channel_index(channel)] = 1.0
                masks = masks.to(self.source_outputs.device)
                run = self.patcher.run(self.base_tokens, self.source_outputs, masks)
                self.counter.add(len(part))
                out.append(self.mean_metric(run.logits, len(part)).float().cpu())
                if progress is not None:
                    done = start + len(part)
                    progress(done / len(paths), f"{done}/{len(paths)} paths")
        if not out:
            return torch.zeros(0)
        values = torch.empty(len(paths))
        values[torch.tensor(order)] = torch.cat(out)
        return values

    def _groups(self, path: PatchPath) -> tuple[tuple[int, str], ...]:
        chans = (self.graph.channels[self.graph.channel_index(c)] for c in path.channels)
        return tuple(sorted({(ch.layer, ch.kind) for ch in chans}))

    # ---- fast: the direct path computed, the rest replayed from the receivers' layer ------
    @property
    def replayed(self) -> bool:
        """Whether ``fast`` ran on the block replay (else on edge masks)."""
        return self._replay is not None

    def replay(self) -> BlockReplay | None:
        """The base run's recorded block inputs (None where the model cannot be replayed)."""
        if self._replay is None:
            with torch.no_grad():
                replay = BlockReplay(self.model, self.base_tokens, self.batch.last)
                saved: dict[str, torch.Tensor] = {}
                final = hooks.site("ln_final_in").name
                with self.model.hooks(fwd_hooks=cache_hooks([final], saved)):
                    self.model(self.base_tokens)
            self.counter.add()
            self.counter.add()
            if not replay.supported:
                return None
            self._replay = replay
            self._final_last = self._last(saved[final])
        return self._replay

    def _last(self, x: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(x.shape[0], device=x.device)
        return x[rows, self.batch.last.to(x.device)]

    def sender_delta(self, sender: str) -> torch.Tensor:
        """The sender's source − base output, [batch, pos, d_model]: what a frozen run adds to
        the input of every receiver it writes into."""
        u = self.graph.node_index(sender)
        return self.source_outputs[:, :, u] - self.base_outputs[:, :, u]

    def fast(self, paths: Sequence[PatchPath], progress: Progress | None = None) -> torch.Tensor:
        """Mean metric of each path. With every other component frozen a receiver's input is
        its base input plus the sender's (source − base) output, so it is computed directly:
        a path into the logits needs only the final norm and unembedding at the metric
        positions, a path into heads' q/k/v replays the base run from the first receiver's
        layer (``BlockReplay``) with those activations set, many paths stacked per call.
        Models that cannot be replayed use ``fast_edges``."""
        if self.replay() is None:
            return self.fast_edges(paths, progress)
        g = self.graph
        values = torch.empty(len(paths))
        kinds = [{g.channels[g.channel_index(c)].kind == LOGITS for c in p.channels} for p in paths]
        if any(len(k) > 1 for k in kinds):
            raise PathPatchError("a path goes either into the logits or into heads, not both")
        into_logits = [i for i, k in enumerate(kinds) if k == {True}]
        into_heads = sorted(
            (i for i, k in enumerate(kinds) if k == {False}),
            key=lambda i: (self._first_layer(paths[i]), self._groups(paths[i])),
        )
        chunk = self.chunk_size()
        done = 0
        with torch.no_grad():
            for start in range(0, len(into_logits), chunk):
                part = into_logits[start : start + chunk]
                values[torch.tensor(part)] = self._logits_paths([paths[i] for i in part])
                done += len(part)
                if progress is not None:
                    progress(done / len(paths), f"{done}/{len(paths)} paths")
            start = 0
            while start < len(into_heads):
                layer = self._first_layer(paths[into_heads[start]])
                part = [i for i in into_heads[start : start + chunk]
                        if self._first_layer(paths[i]) == layer]  # fmt: skip
                values[torch.tensor(part)] = self._head_paths([paths[i] for i in part], layer)
                start += len(part)
                done += len(part)
                if progress is not None:
                    progress(done / len(paths), f"{done}/{len(paths)} paths")
        return values

    def _first_layer(self, path: PatchPath) -> int:
        return min(self.graph.channels[self.graph.channel_index(c)].layer for c in path.channels)

    def _metric_rows(self, logits_last: torch.Tensor, copies: int) -> torch.Tensor:
        values = metric_per_prompt(self.metric, logits_last, self.batch, self.clean_last)
        return values.view(copies, -1).mean(1).float().cpu()

    def _logits_paths(self, paths: Sequence[PatchPath]) -> torch.Tensor:
        assert self._final_last is not None
        x = torch.cat([self._final_last + self._last(self.sender_delta(p.sender)) for p in paths])
        return self._metric_rows(final_logits(self.model, x[:, None, :])[:, 0, :], len(paths))

    def _head_paths(self, paths: Sequence[PatchPath], layer: int) -> torch.Tensor:
        """Replay from ``layer`` with each copy's receivers' q/k/v set to norm(base input +
        sender delta) @ W + b (the activation the frozen run records there)."""
        replay, g, pat = self._replay, self.graph, self.patcher
        assert replay is not None
        copies, b = len(paths), self.batch.n_pairs
        # site name -> (values [copies*batch, pos, heads, d_head], which (row, head) to set)
        patches: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for c, path in enumerate(paths):
            delta = self.sender_delta(path.sender)
            for name in path.channels:
                ch = g.channels[g.channel_index(name)]
                site = hooks.site(ch.kind, ch.layer).name
                w, bias = pat.w[ch.kind][ch.layer], pat.b[ch.kind][ch.layer]
                x = pat.normalise(replay.resid_pre(ch.layer) + delta)
                act = x @ w[ch.index] + bias[ch.index]
                if site not in patches:
                    n, pos = int(w.shape[0]), int(act.shape[1])
                    patches[site] = (
                        act.new_zeros(copies * b, pos, n, act.shape[-1]),
                        torch.zeros(copies * b, 1, n, 1, dtype=torch.bool, device=act.device),
                    )
                vals, mask = patches[site]
                vals[c * b : (c + 1) * b, :, ch.index] = act
                mask[c * b : (c + 1) * b, :, ch.index] = True

        def setter(site: str) -> Callable[..., torch.Tensor]:
            vals, mask = patches[site]

            def hook(t: torch.Tensor, hook: object = None) -> torch.Tensor:
                return torch.where(mask, vals.to(t.dtype), t)

            return hook

        with self.model.hooks(fwd_hooks=[(site, setter(site)) for site in patches]):
            logits_last = replay.run_from(layer, copies)
        self.counter.add(copies)
        return self._metric_rows(logits_last, copies)

    # ---- exact: TransformerLens-style hooked passes per path -----------------------------
    def exact(self, paths: Sequence[PatchPath], progress: Progress | None = None) -> torch.Tensor:
        """Mean metric of each path by freezing, recording and patching hooks (2 passes each)."""
        model, g = self.model, self.graph
        names = hooks_between(model, g.n_layers, LOGITS)  # every head's z and every MLP's output
        base: dict[str, torch.Tensor] = {}
        source: dict[str, torch.Tensor] = {}
        z_names = [hooks.z(layer).name for layer in range(g.n_layers)]
        with torch.no_grad():
            with model.hooks(fwd_hooks=cache_hooks(names, base)):
                model(self.base_tokens)
            with model.hooks(fwd_hooks=cache_hooks(z_names, source)):
                model(self.source_tokens)
            self.counter.add()
            self.counter.add()
            values = []
            for i, path in enumerate(paths):
                values.append(self._exact_one(path, names, base, source))
                if progress is not None:
                    progress((i + 1) / len(paths), f"{i + 1}/{len(paths)} paths")
        return torch.tensor(values)

    def _exact_one(self, path: PatchPath, names, base, source) -> float:
        model, g = self.model, self.graph
        layer, head = _parse_head(path.sender, g, "sender")
        sender_z = source[hooks.z(layer).name][:, :, head]

        def from_source(z: torch.Tensor, hook: object = None) -> torch.Tensor:
            z = z.clone()
            z[:, :, head] = sender_z
            return z

        freeze = [(hooks.z(layer).name, from_source)]
        freeze += freeze_hooks(model, base, path.sender, g.n_layers, LOGITS)
        channels = [g.channels[g.channel_index(c)] for c in path.channels]
        sites = sorted({hooks.site(ch.kind, ch.layer).name for ch in channels if ch.kind != LOGITS})
        recorded: dict[str, torch.Tensor] = {}
        with model.hooks(fwd_hooks=freeze + cache_hooks(sites, recorded)):
            logits = model(self.base_tokens)
        self.counter.add()
        if any(ch.kind == LOGITS for ch in channels):
            if sites:
                raise PathPatchError("a path goes either into the logits or into heads, not both")
            return float(self.mean_metric(logits)[0])
        patches = [
            (hooks.site(ch.kind, ch.layer).name,
             position_patch_hook(recorded[hooks.site(ch.kind, ch.layer).name], ch.index, None))
            for ch in channels
        ]  # fmt: skip
        with model.hooks(fwd_hooks=patches):
            logits = model(self.base_tokens)
        self.counter.add()
        return float(self.mean_metric(logits)[0])
