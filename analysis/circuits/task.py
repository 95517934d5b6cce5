"""A circuit-discovery task: a model, its graph, a prompt batch, a metric and an ablation.

``build_task`` runs the clean and the corrupted prompts once each and keeps every node's output;
the *ablation values* a_u that ablated edges carry are

- ``corrupted``: u's output on the corrupted prompt (the default, as in ACDC and EAP);
- ``mean``: u's output averaged over the clean prompts at each position (real tokens only);
- ``zero``: 0 (biases are never ablated).

Metrics are the prompt-set means of ``analysis.metrics`` (``logit_diff``, ``prob``, ``kl`` to the
clean distribution), read at each prompt's last real position. ``metric_corrupt`` is the metric
with *every* edge ablated, which for the corrupted ablation is the corrupted run itself.

Pass counts are in prompt-batch forward equivalents: one batched forward of c mask copies counts
c forwards (``n_calls`` counts model calls). Ablated runs skip the layers their masks cannot
change (``analysis.circuits.layer_skip``); ``compute`` counts what was computed, a copy run from
layer L as (n_layers - L) / n_layers of a forward, a backward as two forwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Bool, Float

from analysis.circuits.gradient_pass import GradientRun, gradient_pass, gradient_run_reference
from analysis.circuits.graph import CircuitGraph, graph_for_model
from analysis.circuits.intervention import EdgePatcher, NodeValues
from analysis.circuits.layer_skip import SKIP_TOLERANCE, LayerSkip
from analysis.metrics import last_logits, metric_per_prompt
from analysis.prompt_batch import PairBatch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

log = logging.getLogger(__name__)
Ablation = Literal["corrupted", "mean", "zero"]
ABLATIONS: tuple[str, ...] = ("corrupted", "mean", "zero")


@dataclass
class PassCounter:
    n_forward: int = 0
    n_backward: int = 0
    n_calls: int = 0
    compute: float = 0.0  # forward-equivalents of block compute (see the module docstring)

    def forward(self, copies: int = 1, fraction: float = 1.0) -> None:
        self.n_forward += copies
        self.n_calls += 1
        self.compute += copies * fraction

    def backward(self) -> None:
        self.n_backward += 1
        self.compute += 2.0


@dataclass
class CircuitTask:
    patcher: EdgePatcher
    batch: PairBatch
    metric: str
    ablation: str
    clean_outputs: NodeValues
    ablated: NodeValues
    clean_last: Float[torch.Tensor, "batch d_vocab"]
    metric_clean: float
    metric_corrupt: float
    counter: PassCounter = field(default_factory=PassCounter)
    clean_gradients: GradientRun | None = None  # at the clean run (build_task with_gradients)
    chunk: int = 32  # mask copies per batched forward
    qk_fix_skipped: str | None = None  # why the QK fix fell back to linear scores, if it did
    skip: LayerSkip | None = None  # layer skipping of ablated runs (None: full forwards)

    @property
    def graph(self) -> CircuitGraph:
        return self.patcher.graph

    def metric_of(self, logits: torch.Tensor, copies: int) -> Float[torch.Tensor, " copies"]:
        """Prompt-set mean metric of each copy of a batched run."""
        last = last_logits(logits, self.batch.last.repeat(copies))
        values = metric_per_prompt(self.metric, last, self.batch, self.clean_last)
        return values.view(copies, -1).mean(1)

    def ablated_metric(
        self, ablate_edges: Bool[torch.Tensor, "copies edge"]
    ) -> Float[torch.Tensor, " copies"]:
        """The metric with the given edges ablated (one row per mask), in batched chunks."""
        results = []
        with torch.no_grad():
            for start in range(0, ablate_edges.shape[0], self.chunk):
                masks = ablate_edges[start : start + self.chunk]
                skipped = self.skip.last_logits(masks) if self.skip is not None else None
                if skipped is None:
                    results.append(self._full_metric(masks))
                    continue
                values = self._last_metric(skipped, masks.shape[0])
                if not self.skip.checked and bool(masks.any()):  # type: ignore[union-attr]
                    # the copy with the most ablated edges, once with full forwards
                    i = int(masks.sum(1).argmax())
                    full = self._full_metric(masks[i : i + 1])
                    if not self._check_skip(values[i : i + 1], full):
                        values = self._full_metric(masks)
                results.append(values)
        return torch.cat(results) if results else torch.zeros(0)

    def _full_metric(self, masks: torch.Tensor) -> Float[torch.Tensor, " copies"]:
        run = self.patcher.run(self.batch.clean, self.ablated, self.graph.dense(masks.float()))
        self.counter.forward(masks.shape[0])
        return self.metric_of(run.logits, masks.shape[0])

    def _last_metric(self, last: torch.Tensor, copies: int) -> Float[torch.Tensor, " copies"]:
        values = metric_per_prompt(self.metric, last, self.batch, self.clean_last)
        return values.view(copies, -1).mean(1)

    def _check_skip(self, skipped: torch.Tensor, full: torch.Tensor) -> bool:
        """The first skipped call with an ablation must equal a full forward (of its copy with
        the most ablated edges); otherwise skipping is turned off. True when it did."""
        assert self.skip is not None
        self.skip.checked = True
        err = float((skipped - full).abs().max())
        scale = max(1.0, float(full.abs().max()))
        if not err <= SKIP_TOLERANCE * scale:
            self.skip.off = f"skipped layers changed the metric by {err:.3g}; full forwards used"
            log.warning("layer skipping off: %s", self.skip.off)
            return False
        return True

    def gradient_run(
        self,
        input_override: Float[torch.Tensor, "batch pos d_model"] | None = None,
        ablate: Float[torch.Tensor, "node channel"] | None = None,
        fraction: float = 0.0,
    ) -> GradientRun:
        """Gradients of the mean metric at one run on the clean prompts, optionally with other
        input embeddings or with edges (partly) ablated: every edge u -> v carries ``fraction``
        of (a_u - o_u) (``gradient_pass``), or, given ``ablate``, ``ablate[u, v]`` times it
        (one recorded input per channel: ``EdgePatcher.run``), so 0.5 is half-way between
        clean and ablated."""
        if ablate is None:
            run, _ = gradient_pass(
                self.patcher,
                self.batch.clean,
                lambda logits: self.metric_of(logits, 1)[0],
                ablated=self.ablated if fraction else None,
                fraction=fraction,
                input_override=input_override,
            )
        else:
            with torch.enable_grad():
                recorded = self.patcher.run(
                    self.batch.clean,
                    self.ablated,
                    ablate[None],
                    record_inputs=True,
                    record_patterns=True,
                    input_override=input_override,
                )
                value = self.metric_of(recorded.logits, 1)[0]
                run = gradient_run_reference(recorded, value, self.patcher)
        self.counter.forward()
        self.counter.backward()
        return run


def _position_mean(values: NodeValues, lengths: torch.Tensor) -> NodeValues:
    pos = torch.arange(values.shape[1], device=values.device)
    valid = (pos[None, :] < lengths[:, None].to(values.device)).to(values.dtype)
    total = torch.einsum("bpud,bp->pud", values, valid)
    mean = total / valid.sum(0).clamp(min=1)[:, None, None]
    return mean.expand_as(values).clone()


def build_task(
    model: TransformerBridge,
    batch: PairBatch,
    *,
    metric: str = "logit_diff",
    ablation: str = "corrupted",
    graph: CircuitGraph | None = None,
    with_gradients: bool = False,
) -> CircuitTask:
    """Run clean and corrupted prompts once each and set up the ablation values.

    ``with_gradients`` also back-propagates the metric through the clean run (one backward)
    and keeps d metric / d (input of every channel, attention patterns) in
    ``task.clean_gradients``.
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    patcher = EdgePatcher(model, graph or graph_for_model(model))
    counter = PassCounter()
    clean_gradients = None
    if with_gradients:

        def clean_metric(logits: torch.Tensor) -> torch.Tensor:
            last = last_logits(logits, batch.last)
            return task_metric(metric, last, batch, last.detach())

        clean_gradients, clean = gradient_pass(patcher, batch.clean, clean_metric)
        counter.backward()
    else:
        with torch.no_grad():
            clean = patcher.run(batch.clean)
    with torch.no_grad():
        corrupt = patcher.run(batch.corrupted)
    counter.forward()
    counter.forward()
    clean_last = last_logits(clean.logits, batch.last).detach()
    if ablation == "corrupted":
        ablated = corrupt.outputs.detach()
    elif ablation == "mean":
        ablated = _position_mean(clean.outputs.detach(), batch.lengths)
    else:
        ablated = torch.zeros_like(clean.outputs)
    task = CircuitTask(
        patcher=patcher,
        batch=batch,
        metric=metric,
        ablation=ablation,
        clean_outputs=clean.outputs.detach(),
        ablated=ablated,
        clean_last=clean_last,
        metric_clean=float(task_metric(metric, clean_last, batch, clean_last)),
        metric_corrupt=0.0,
        counter=counter,
        clean_gradients=clean_gradients,
    )
    task.skip = LayerSkip(task, patcher.detached(clean))
    if ablation == "corrupted":
        corrupt_last = last_logits(corrupt.logits, batch.last)
        task.metric_corrupt = float(task_metric(metric, corrupt_last, batch, clean_last))
    else:
        everything = torch.ones(1, task.graph.n_edges, dtype=torch.bool)
        task.metric_corrupt = float(task.ablated_metric(everything)[0])
    return task


def task_metric(
    metric: str, logits_last: torch.Tensor, batch: PairBatch, clean_last: torch.Tensor
) -> torch.Tensor:
    return metric_per_prompt(metric, logits_last, batch, clean_last).mean()
