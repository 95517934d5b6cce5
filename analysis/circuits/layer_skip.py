"""Layer skipping for batched edge ablations: recompute only the layers an ablation can change.

Ablating an edge u -> v changes nothing before v's layer. In one batched call of ``copies``
masks, let L be the first layer with an edge into it that some masks ablate and others do not
(``logits`` counts as layer n_layers). Every edge into a layer before L is then ablated in all
copies or in none, so all copies share one run up to L: the clean run when no such edge is
ablated (exact patching, ACDC: decisions are made from the logits backwards), otherwise one run
with those edges ablated (the *prefix*: ACDC with pruned candidates starts with edges into every
layer removed). ``LayerSkip`` computes that shared run once per distinct prefix (the clean one
is kept; the last other one is cached), then runs the copies through blocks L.. only and reads
the logits at each prompt's last position (``EdgePatcher.run_from``).

Support is checked, not assumed: the block replay must reproduce the model
(``BlockReplay.supported``) and the first skipped call with an ablation is also computed with a
full forward (its copy with the most ablated edges) and must give the same metric value (≤ 1e-4
relative); otherwise ``off`` says why and every call uses full forwards. Cost is counted as
forward-equivalents of block compute: a copy run from layer L costs (n_layers - L) / n_layers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from jaxtyping import Bool, Float

from analysis.circuits.intervention import LayerStart, PatchedRun
from analysis.patching.replay import BlockReplay

if TYPE_CHECKING:
    from analysis.circuits.task import CircuitTask

log = logging.getLogger(__name__)
SKIP_TOLERANCE = 1e-4


class LayerSkip:
    """Plans and runs the shared-prefix part of a task's batched ablations."""

    def __init__(self, task: CircuitTask, clean: PatchedRun) -> None:
        self.task = task
        graph = task.graph
        self.n_layers = graph.n_layers
        layers = [graph.channels[c].layer for c in graph.edge_target.tolist()]
        self.edge_layer = torch.tensor(layers, dtype=torch.long)
        self.clean = clean
        self._base: tuple[bytes, PatchedRun] | None = None
        self._replay: BlockReplay | None = None
        self.off: str | None = None
        self.checked = False

    def plan(self, masks: Bool[torch.Tensor, "copies edge"]) -> tuple[int, torch.Tensor]:
        """(L, the prefix: edges into layers < L that every copy ablates), whichever costs less:
        from the clean run at the first layer any copy ablates into, or from a prefix run at
        the first layer the copies differ in (one more forward unless it is cached)."""
        n, copies = self.n_layers, int(masks.shape[0])
        set_any = masks.any(0)
        differ = set_any & ~masks.all(0)
        clean_layer = int(self.edge_layer[set_any].min()) if bool(set_any.any()) else n
        layer = int(self.edge_layer[differ].min()) if bool(differ.any()) else n
        prefix = masks[0] & (self.edge_layer < layer)
        cached = self._base is not None and self._base[0] == prefix.numpy().tobytes()
        prefix_cost = (0 if cached else 1) + copies * (n - layer) / n
        if copies * (n - clean_layer) / n <= prefix_cost:
            return clean_layer, torch.zeros_like(prefix)
        return layer, prefix

    def replay(self) -> BlockReplay:
        if self._replay is None:
            batch = self.task.batch
            self._replay = BlockReplay(self.task.patcher.model, batch.clean, batch.last)
            self.task.counter.forward()
            if not self._replay.supported:
                self.off = f"layer replay unavailable: {self._replay.reason}"
        return self._replay

    def start(self, layer: int, prefix: torch.Tensor) -> LayerStart:
        """The shared run up to ``layer`` with the ``prefix`` edges ablated."""
        patcher = self.task.patcher
        if not bool(prefix.any()):
            return patcher.start_at(self.clean, layer)
        key = prefix.numpy().tobytes()
        if self._base is None or self._base[0] != key:
            dense = self.task.graph.dense(prefix[None].float())
            run = patcher.run(self.task.batch.clean, self.task.ablated, dense)
            self.task.counter.forward()
            self._base = (key, run)
        return patcher.start_at(self._base[1], layer)

    def last_logits(
        self, masks: Bool[torch.Tensor, "copies edge"]
    ) -> Float[torch.Tensor, "copies_batch d_vocab"] | None:
        """Last-position logits of the masked runs with layers skipped, or None when skipping
        saves nothing (every copy differs already in layer 0) or is not supported."""
        if self.off is not None:
            return None
        layer, prefix = self.plan(masks)
        if layer == 0:
            return None
        replay = self.replay()
        if self.off is not None:
            return None
        start = self.start(layer, prefix)
        dense = self.task.graph.dense(masks.float())
        logits = self.task.patcher.run_from(start, replay, self.task.ablated, dense)
        copies = int(masks.shape[0])
        self.task.counter.forward(copies, (self.n_layers - layer) / self.n_layers)
        return logits
