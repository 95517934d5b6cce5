"""ACDC: automatic circuit discovery by greedy exact edge pruning (Conmy et al. 2023).

Starting from the full graph, input channels are visited from ``logits`` backwards (reverse
topological order); for each channel its incoming edges are tried latest source first. An edge
is removed for good when ablating it (on top of everything already removed) raises the
*damage* by less than ``tau``:

- ``kl``: damage = KL(clean || current) (ACDC's default objective);
- ``logit_diff`` / ``prob``: damage = (m_clean - m) / (m_clean - m_corrupt), the lost fraction
  of the clean-vs-corrupt effect (0 = full model, 1 = everything ablated).

A tested edge's score is its damage increase at the moment it was tried (positive = it
matters); ``in_circuit`` is whether ACDC kept it.

Two implementations make the same decisions:

- ``acdc_reference``: one forward per edge, exactly as above.
- ``acdc``: (1) *subtree pruning*: when a channel's node has no kept outgoing edge left, its
  output reaches nothing, so all its incoming edges are removed untested (the reference finds
  a ~0 change for each and removes them too, for any tau > 0); (2) *speculative batching*: the
  next ``window`` edge tests are run in one batched forward, each built on the decisions the
  earlier ones are *predicted* to get (a window of edges never measured is first probed, each
  edge alone against the current state, in one batched call; later predictions come from the
  previous round). Decisions are then checked in order against the measured damages; every
  test up to the first misprediction is exactly the reference's test, and the rest is redone.

Both take an optional set of edges to remove *untested* (``untested``): when the walk reaches
such an edge it is removed without a test, as if its test had said so, and the damage of the
new state is measured once before the next test. ``candidates_from_attribution`` chooses them
from attribution scores (EAP-IG), as ACDC++ and edge-pruning methods do: an edge whose
attributed damage is below a fraction of tau is assumed to be removable. So the circuit is
exactly full ACDC's whenever full ACDC removes every untested edge too; it differs only where
the attribution missed an edge full ACDC would have kept. The summary of a run says how many
edges were never tested.

Rounds stay within one layer's input channels, so that each batched call recomputes only that
layer onwards (``analysis.circuits.layer_skip``).

``AcdcProgress`` is the full state between rounds (JSON-serialisable), so a run can be
checkpointed and resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from analysis.circuits.graph import CircuitGraph
from analysis.circuits.task import CircuitTask


@dataclass
class AcdcProgress:
    """Everything ACDC knows between rounds. ``position`` indexes ``processing_order``."""

    position: int
    damage: float
    removed: list[int] = field(default_factory=list)
    scores: dict[int, float] = field(default_factory=dict)  # tested edges only
    prediction: dict[int, bool] = field(default_factory=dict)  # edge -> predicted removal
    n_forward: int = 0
    n_calls: int = 0
    untested: list[int] = field(default_factory=list)  # removed before the run, never tested

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scores"] = {str(k): v for k, v in self.scores.items()}
        data["prediction"] = {str(k): v for k, v in self.prediction.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AcdcProgress:
        return cls(
            position=int(data["position"]),
            damage=float(data["damage"]),
            removed=[int(e) for e in data["removed"]],
            scores={int(k): float(v) for k, v in data["scores"].items()},
            prediction={int(k): bool(v) for k, v in data["prediction"].items()},
            n_forward=int(data.get("n_forward", 0)),
            n_calls=int(data.get("n_calls", 0)),
            untested=[int(e) for e in data.get("untested", [])],
        )


@dataclass(frozen=True)
class AcdcResult:
    kept: torch.Tensor  # [edge] bool
    scores: torch.Tensor  # [edge] damage increase when tested; 0 when pruned untested
    tested: torch.Tensor  # [edge] bool
    damage: float
    n_forward: int
    n_calls: int


def processing_order(graph: CircuitGraph) -> list[tuple[int, list[int]]]:
    """(channel, its incoming edge ids latest source first), channels from logits backwards."""
    by_channel: dict[int, list[int]] = {}
    for e, c in enumerate(graph.edge_target.tolist()):
        by_channel.setdefault(c, []).append(e)
    return [(c, by_channel[c][::-1]) for c in range(len(graph.channels) - 1, -1, -1)]


def candidates_from_attribution(
    task: CircuitTask, scores: torch.Tensor, tau: float, fraction: float
) -> torch.Tensor:
    """[edge] bool: the edges to remove untested, those whose attributed damage (``scores``
    in metric units, as EAP-IG gives them, converted like ACDC's damage) is below
    ``fraction * tau``."""
    if task.metric == "kl":
        damage = scores.abs()
    else:
        damage = scores.abs() / abs(task.metric_clean - task.metric_corrupt)
    return damage < fraction * tau


def _start(task: CircuitTask, untested: torch.Tensor | None) -> AcdcProgress:
    none = torch.zeros(1, task.graph.n_edges, dtype=torch.bool)
    ids = [] if untested is None else torch.nonzero(untested).flatten().tolist()
    return AcdcProgress(position=0, damage=float(_damage_of(task, none)[0]), untested=ids)


def damage_fn(task: CircuitTask) -> Callable[[torch.Tensor], torch.Tensor]:
    """Metric values -> damage (see the module docstring)."""
    if task.metric == "kl":
        return lambda values: values
    den = task.metric_clean - task.metric_corrupt
    if abs(den) <= 1e-6 * max(1.0, abs(task.metric_clean)):
        raise ValueError(
            f"metric {task.metric} is the same on clean and corrupted prompts "
            f"({task.metric_clean:.6g}); ACDC's damage is undefined. Use pairs whose corruption "
            "changes the answer, or metric kl"
        )
    return lambda values: (task.metric_clean - values) / den


def _damage_of(task: CircuitTask, removed: torch.Tensor) -> torch.Tensor:
    return damage_fn(task)(task.ablated_metric(removed))


def _result(task: CircuitTask, prog: AcdcProgress) -> AcdcResult:
    n = task.graph.n_edges
    kept = torch.ones(n, dtype=torch.bool)
    kept[prog.removed] = False
    scores, tested = torch.zeros(n), torch.zeros(n, dtype=torch.bool)
    for e, s in prog.scores.items():
        scores[e], tested[e] = s, True
    return AcdcResult(kept, scores, tested, prog.damage, prog.n_forward, prog.n_calls)


def acdc_reference(
    task: CircuitTask, tau: float, untested: torch.Tensor | None = None
) -> AcdcResult:
    """One-edge-at-a-time ACDC: every edge (but ``untested`` ones) tested with its own forward."""
    start = task.counter.n_forward, task.counter.n_calls
    prog = _start(task, untested)
    skip, stale = set(prog.untested), False
    removed = torch.zeros(1, task.graph.n_edges, dtype=torch.bool)
    for _, edges in processing_order(task.graph):
        for e in edges:
            if e in skip:
                removed[0, e], stale = True, True
                prog.removed.append(e)
                continue
            if stale:
                prog.damage, stale = float(_damage_of(task, removed)[0]), False
            trial = removed.clone()
            trial[0, e] = True
            value = float(_damage_of(task, trial)[0])
            prog.scores[e] = value - prog.damage
            if value - prog.damage < tau:
                removed, prog.damage = trial, value
                prog.removed.append(e)
    if stale:
        prog.damage = float(_damage_of(task, removed)[0])
    prog.n_forward = task.counter.n_forward - start[0]
    prog.n_calls = task.counter.n_calls - start[1]
    return _result(task, prog)


@dataclass
class _Walk:
    """Events of one speculative round: ('prune', channel) or ('test', position, edge)."""

    events: list[tuple] = field(default_factory=list)
    trials: list[torch.Tensor] = field(default_factory=list)


class _Acdc:
    def __init__(self, task: CircuitTask, tau: float, window: int, untested: set[int]) -> None:
        self.task, self.tau, self.window = task, tau, window
        self.untested = untested
        self.graph = task.graph
        self.order = processing_order(self.graph)
        self.seq = [(i, e) for i, (_, edges) in enumerate(self.order) for e in edges]
        sources = self.graph.edge_source.tolist()
        self.out_edges: dict[int, list[int]] = {}
        for e, u in enumerate(sources):
            self.out_edges.setdefault(u, []).append(e)
        self.first_pos: dict[int, int] = {}
        for pos, (i, _) in enumerate(self.seq):
            self.first_pos.setdefault(i, pos)
        # the layer each test's edge leads into: a round stays in one layer, so that its
        # batched call recomputes only that layer onwards (``analysis.circuits.layer_skip``)
        self.seq_layer = [self.graph.channels[self.order[i][0]].layer for i, _ in self.seq]

    def is_dead(self, order_index: int, removed: torch.Tensor) -> bool:
        channel = self.graph.channels[self.order[order_index][0]]
        if channel.kind == "logits":
            return False
        owners = [self.graph.node_index(n) for n in self.graph.channel_owners(channel)]
        return all(bool(removed[self.out_edges[u]].all()) for u in owners)

    def walk(self, prog: AcdcProgress, removed: torch.Tensor) -> _Walk:
        """Up to ``window`` edge tests from ``prog.position`` under the predicted decisions;
        untested edges are removed as reached ('skip'), and the damage of the state after them
        is measured before the next test and at the end ('base')."""
        walk, spec, pos = _Walk(), removed.clone(), prog.position
        layer, pending = self.seq_layer[pos], False
        while pos < len(self.seq) and len(walk.trials) < self.window:
            if walk.trials and self.seq_layer[pos] != layer:
                break
            i, e = self.seq[pos]
            if pos == self.first_pos[i] and self.is_dead(i, spec):
                edges = self.order[i][1]
                spec[edges] = True
                walk.events.append(("prune", i))
                pos += len(edges)
                continue
            if e in self.untested:
                spec[e], pending = True, True
                walk.events.append(("skip", pos, e))
                pos += 1
                continue
            if pending:
                walk.events.append(("base",))
                walk.trials.append(spec.clone())
                pending = False
                continue
            trial = spec.clone()
            trial[e] = True
            walk.events.append(("test", pos, e))
            walk.trials.append(trial)
            if prog.prediction.get(e, True):
                spec[e] = True
            pos += 1
        if pending:
            walk.events.append(("base",))
            walk.trials.append(spec.clone())
        return walk

    def probe(self, prog: AcdcProgress, removed: torch.Tensor) -> None:
        """Predict the next ``window`` unpredicted edges by testing each one alone against the
        current state (one batched call). Predictions only steer speculation: a wrong one
        costs a round, never a different decision."""
        layer = self.seq_layer[prog.position]
        todo = [
            e
            for (_, e), edge_layer in zip(
                self.seq[prog.position :], self.seq_layer[prog.position :], strict=True
            )
            if edge_layer == layer
            and e not in prog.prediction
            and e not in self.untested
            and not removed[e]
        ][: self.window]
        if not todo:
            return
        trials = removed.repeat(len(todo), 1)
        trials[torch.arange(len(todo)), todo] = True
        damages = _damage_of(self.task, trials)
        for e, value in zip(todo, damages.tolist(), strict=True):
            prog.prediction[e] = value - prog.damage < self.tau

    def round(self, prog: AcdcProgress, removed: torch.Tensor) -> None:
        nxt = self.seq[prog.position][1]
        if nxt not in prog.prediction:
            self.probe(prog, removed)
        walk = self.walk(prog, removed)
        damages = _damage_of(self.task, torch.stack(walk.trials)) if walk.trials else None
        spec_damage, t, stop = prog.damage, 0, False
        for event in walk.events:
            if event[0] == "prune":
                if not stop:
                    edges = self.order[event[1]][1]
                    removed[edges] = True
                    prog.removed += edges
                    prog.position = self.first_pos[event[1]] + len(edges)
                continue
            if event[0] == "skip":
                if not stop:
                    removed[event[2]] = True
                    prog.removed.append(event[2])
                    prog.position = event[1] + 1
                continue
            if event[0] == "base":
                spec_damage = float(damages[t])  # type: ignore[index]
                t += 1
                if not stop:
                    prog.damage = spec_damage
                continue
            _, pos, e = event
            value = float(damages[t])  # type: ignore[index]
            t += 1
            predicted = prog.prediction.get(e, True)
            decision = value - spec_damage < self.tau
            if predicted:  # the next trial of this round was built with e removed
                spec_damage = value
            if stop:  # built on a wrong prediction: only keep it as the next guess
                prog.prediction[e] = decision
                continue
            prog.scores[e] = value - prog.damage
            prog.position = pos + 1
            if decision:
                removed[e] = True
                prog.removed.append(e)
                prog.damage = value
            if decision != predicted:
                prog.prediction[e] = decision
                stop = True


def auto_window(task: CircuitTask, budget_floats: float = 6e7) -> int:
    """Edge tests per round: as many copies as fit ~240 MB of node outputs, 8 to 256."""
    b, p, u, d = task.clean_outputs.shape
    return int(min(256, max(8, budget_floats // (b * p * u * d))))


def acdc(
    task: CircuitTask,
    tau: float,
    *,
    window: int | None = None,
    resume: AcdcProgress | None = None,
    on_round: Callable[[AcdcProgress, float], None] | None = None,
    untested: torch.Tensor | None = None,
) -> AcdcResult:
    """Batched ACDC with subtree pruning; same circuit as ``acdc_reference`` at the same tau.

    ``on_round(progress, fraction_done)`` is called after every round (checkpoint, progress
    report, cancellation); ``resume`` continues from a saved ``AcdcProgress`` (with the
    untested edges it started with). ``window`` (edge tests per batched call) defaults to what
    fits a ~240 MB activation budget. ``untested``: [edge] bool, edges removed without a test.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0 (got {tau}); it is the damage an edge may add")
    window = window or auto_window(task)
    task.chunk = max(task.chunk, window)  # one model call per round
    base_forward, base_calls = task.counter.n_forward, task.counter.n_calls
    if resume is None:
        prog = _start(task, untested)
    else:
        prog = resume
        base_forward -= prog.n_forward
        base_calls -= prog.n_calls
    runner = _Acdc(task, tau, window, set(prog.untested))
    removed = torch.zeros(task.graph.n_edges, dtype=torch.bool)
    removed[prog.removed] = True
    while prog.position < len(runner.seq):
        runner.round(prog, removed)
        prog.n_forward = task.counter.n_forward - base_forward
        prog.n_calls = task.counter.n_calls - base_calls
        if on_round is not None:
            on_round(prog, prog.position / len(runner.seq))
    return _result(task, prog)
