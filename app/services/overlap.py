"""Circuit overlap across tasks, read from stored circuit runs. Torch-free (the web uses it).

``circuit_overlap(store, [a, b, …])`` takes two or more finished ``circuit`` runs of one model
(refusing anything else with one line naming the fix) and returns a :class:`CircuitOverlap`:

- per pair, Jaccard and overlap coefficient of the in-circuit heads (Merullo et al.'s measure)
  and of all in-circuit nodes (heads and MLPs), plus the square matrices the figure draws;
- per head of the model's grid, the circuits that hold it and its group (in every circuit, in
  some, only in one — task-specific — or in none);
- the shared edges: in-circuit edges present in every run, with each run's score;
- per run, the overlap of its circuit with the ground truth of its task when the model has one
  (the zoo's file, or the reference the run was scored against), and the pairwise overlap of
  those ground truths, so that discovered overlap can be set beside the true one.

Set arithmetic lives in :mod:`analysis.circuits.overlap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.circuits import overlap as circuit_sets
from analysis.circuits.ground_truth import (
    GroundTruth,
    GroundTruthError,
    choose_ground_truth,
    owner_node,
)
from storage.errors import InvalidInput, NotFound
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore
from storage.uploads import is_upload_ref

KIND = "circuit"
MEASURES = ("jaccard", "overlap")


class OverlapError(ValueError):
    """The runs cannot be overlapped; the message names the run and the fix."""


@dataclass(frozen=True)
class CircuitRun:
    """One run's circuit: its in-circuit nodes and edges."""

    id: int
    label: str  # "#12 bracket-match"
    task: str | None
    prompt_set: str | None
    method: str
    nodes: frozenset[str]  # heads and MLPs in the circuit
    edges: dict[tuple[str, str], float]  # in-circuit edges and their scores

    @property
    def heads(self) -> frozenset[str]:
        return circuit_sets.level_set(self.nodes, "heads")

    def level(self, level: str) -> frozenset[str]:
        return circuit_sets.level_set(self.nodes, level)


@dataclass(frozen=True)
class TruthOverlap:
    """A run's circuit against the ground truth of its task (or why there is none)."""

    run: int
    name: str | None
    reason: str | None = None
    heads: circuit_sets.PairOverlap | None = None
    nodes: circuit_sets.PairOverlap | None = None
    truth_nodes: frozenset[str] = frozenset()


@dataclass
class CircuitOverlap:
    model: str
    runs: list[CircuitRun]
    n_layers: int
    n_heads: int
    truths: list[TruthOverlap] = field(default_factory=list)

    # -- node sets -------------------------------------------------------------------------

    def sets(self, level: str = "heads") -> dict[str, frozenset[str]]:
        return {r.label: r.level(level) for r in self.runs}

    def truth_sets(self, level: str = "heads") -> dict[str, frozenset[str]] | None:
        """The runs' ground-truth node sets, when every run has one."""
        if not self.truths or any(t.name is None for t in self.truths):
            return None
        by_run = {t.run: t.truth_nodes for t in self.truths}
        return {r.label: circuit_sets.level_set(by_run[r.id], level) for r in self.runs}

    def pairs(self, level: str = "heads") -> list[circuit_sets.PairOverlap]:
        return circuit_sets.pairwise(self.sets(level))

    def matrix(self, level: str = "heads", measure: str = "jaccard") -> list[list[float | None]]:
        return circuit_sets.matrix(self.sets(level), measure)

    # -- heads on the grid -----------------------------------------------------------------

    def head_membership(self) -> list[dict[str, Any]]:
        """One row per head of the grid: layer, head, the circuits holding it, its group."""
        circuits = self.sets("heads")
        grid = [f"a{la}.h{h}" for la in range(self.n_layers) for h in range(self.n_heads)]
        holders = circuit_sets.membership(circuits, grid)
        return [
            {
                "layer": la, "head": h, "node": f"a{la}.h{h}",
                "n_circuits": len(holders[f"a{la}.h{h}"]), "circuits": holders[f"a{la}.h{h}"],
                "group": circuit_sets.category(holders[f"a{la}.h{h}"], len(circuits)),
            }
            for la in range(self.n_layers)
            for h in range(self.n_heads)
        ]  # fmt: skip

    def shared(self, level: str = "heads") -> list[str]:
        return sorted(circuit_sets.in_every(self.sets(level)), key=circuit_sets.head_sort_key)

    def specific(self, level: str = "heads") -> dict[str, list[str]]:
        return {
            label: sorted(members, key=circuit_sets.head_sort_key)
            for label, members in circuit_sets.only_in(self.sets(level)).items()
        }

    # -- edges -----------------------------------------------------------------------------

    def shared_edges(self) -> list[dict[str, Any]]:
        """In-circuit edges present in every run, with each run's score, strongest first."""
        common = set(self.runs[0].edges)
        for run in self.runs[1:]:
            common &= set(run.edges)
        rows = [
            {"source": s, "target": t} | {f"score {r.label}": r.edges[(s, t)] for r in self.runs}
            for s, t in common
        ]
        return sorted(
            rows,
            key=lambda row: (-min(abs(row[f"score {r.label}"]) for r in self.runs),
                             row["source"], row["target"]),
        )  # fmt: skip

    # -- tables ----------------------------------------------------------------------------

    def pair_rows(self) -> list[dict[str, Any]]:
        """One row per pair and level, and the same for the ground truths when all have one."""
        rows = []
        for level in circuit_sets.LEVELS:
            for p in self.pairs(level):
                rows.append({"of": "circuits", "level": level} | _pair_dict(p))
            truth = self.truth_sets(level)
            for p in circuit_sets.pairwise(truth) if truth else []:
                rows.append({"of": "ground truths", "level": level} | _pair_dict(p))
        return rows

    def truth_rows(self) -> list[dict[str, Any]]:
        rows = []
        for t in self.truths:
            label = next(r.label for r in self.runs if r.id == t.run)
            row: dict[str, Any] = {"run": label, "ground_truth": t.name or "—"}
            for level, p in (("heads", t.heads), ("nodes", t.nodes)):
                row |= {
                    f"{level} jaccard": p.jaccard if p else None,
                    f"{level} overlap": p.overlap if p else None,
                    f"{level} found/true": f"{p.n_shared}/{p.n_b}" if p else None,
                }
            rows.append(row | ({"reason": t.reason} if t.reason else {}))
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "runs": [
                {"id": r.id, "label": r.label, "task": r.task, "prompt_set": r.prompt_set,
                 "method": r.method, "n_heads": len(r.heads), "n_nodes": len(r.nodes),
                 "n_edges": len(r.edges)}
                for r in self.runs
            ],
            "pairs": self.pair_rows(),
            "shared_heads": self.shared("heads"),
            "shared_nodes": self.shared("nodes"),
            "specific_heads": self.specific("heads"),
            "specific_nodes": self.specific("nodes"),
            "shared_edges": self.shared_edges(),
            "ground_truth": self.truth_rows(),
        }  # fmt: skip

    def frames(self) -> dict[str, pd.DataFrame]:
        """``pairs``, ``heads`` (membership per head), ``shared_edges``, ``ground_truth``."""
        heads = pd.DataFrame(self.head_membership())
        heads["circuits"] = heads["circuits"].map(", ".join)
        return {
            "pairs": pd.DataFrame(self.pair_rows()),
            "heads": heads,
            "shared_edges": pd.DataFrame(
                self.shared_edges(),
                columns=["source", "target", *(f"score {r.label}" for r in self.runs)],
            ),
            "ground_truth": pd.DataFrame(self.truth_rows()),
        }


def _pair_dict(p: circuit_sets.PairOverlap) -> dict[str, Any]:
    return {
        "a": p.a, "b": p.b, "n_a": p.n_a, "n_b": p.n_b, "shared": p.n_shared,
        "union": p.n_union, "jaccard": p.jaccard, "overlap": p.overlap,
    }  # fmt: skip


# -- reading runs ---------------------------------------------------------------------------


def parse_run_ids(text: str | None) -> list[int]:
    """``"3,5, 8"`` → ``[3, 5, 8]``; anything but comma-separated run ids is refused."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise OverlapError(f"runs must be comma-separated run ids such as 3,5,8; got {text!r}")
    return [int(p) for p in parts]


def check_runs(store: ResultStore, run_ids: list[int]) -> list[RunRecord]:
    """The run records, if they are 2+ distinct finished circuit runs of one model."""
    if len(run_ids) < 2:
        raise OverlapError(
            f"overlap needs two or more circuit runs, got {len(run_ids)}; name at least two"
        )
    twice = sorted({r for r in run_ids if run_ids.count(r) > 1})
    if twice:
        raise OverlapError(f"run {twice[0]} is named twice; name each run once")
    records = []
    for run_id in run_ids:
        try:
            run = store.get_run(run_id)
        except NotFound:
            raise OverlapError(
                f"no run {run_id}; list circuit runs with `headlab runs list --kind circuit`"
            ) from None
        if run.kind != KIND:
            raise OverlapError(
                f"run {run_id} is a {run.kind} run, not a circuit run; overlap compares circuit "
                "runs (`headlab runs list --kind circuit`)"
            )
        if run.status != RunStatus.FINISHED:
            raise OverlapError(
                f"run {run_id} is {run.status.value}, not FINISHED; overlap reads finished "
                f"circuits: wait for it (`headlab runs show {run_id}`) or pick another run"
            )
        records.append(run)
    models = {r.model_spec for r in records}
    if len(models) > 1:
        first = records[0]
        other = next(r for r in records if r.model_spec != first.model_spec)
        raise OverlapError(
            f"runs {first.id} ({first.model_spec}) and {other.id} ({other.model_spec}) are on "
            "different models; overlap compares circuits of one model on different tasks"
        )
    return records


def _prompt_set(store: ResultStore, run: RunRecord) -> tuple[str | None, str | None]:
    if run.prompt_set_id is None:
        return None, None
    try:
        record = store.get_prompt_set(run.prompt_set_id)
    except NotFound:
        return None, None
    return record.name, record.task


def _circuit(store: ResultStore, run: RunRecord) -> CircuitRun:
    name, task = _prompt_set(store, run)
    nodes = store.nodes(run.id)
    kept = nodes[nodes["in_circuit"].astype(bool)]["name"].astype(str)
    edges = store.edges(run.id)
    edges = edges[edges["in_circuit"].astype(bool)]
    label = f"#{run.id} {task or name or run.config.get('method') or KIND}"
    return CircuitRun(
        id=run.id,
        label=label,
        task=task,
        prompt_set=name,
        method=str(run.config.get("method") or run.summary.get("method") or KIND),
        nodes=circuit_sets.level_set(kept, "nodes"),
        edges={
            (str(s), str(t)): float(v) for s, t, v in edges[["source", "target", "score"]].values
        },
    )


def _grid_shape(store: ResultStore, runs: list[RunRecord]) -> tuple[int, int]:
    layers, heads = 0, 0
    for run in runs:
        nodes = store.nodes(run.id)
        named = nodes.dropna(subset=["layer", "head"])
        if not named.empty:
            layers = max(layers, int(named["layer"].max()) + 1)
            heads = max(heads, int(named["head"].max()) + 1)
    return layers, heads


def ground_truth_of(
    store: ResultStore, run: RunRecord, task: str | None
) -> tuple[GroundTruth | None, str | None, str]:
    """(ground truth, its name, why there is none) for a run: the one it was scored against
    (a reference, a file, an upload), else the zoo's one for its task."""
    given = run.config.get("ground_truth")
    spec = str(given) if given else None
    try:
        if spec is not None and is_upload_ref(spec):
            spec = str(store.uploads.resolve(spec))
        choice = choose_ground_truth(spec, run.model_spec, task)
    except (GroundTruthError, InvalidInput) as exc:
        return None, None, str(exc)
    return choice.truth, choice.name, choice.reason or ""


def truth_nodes(truth: GroundTruth) -> frozenset[str]:
    """A ground truth's heads and MLPs: its nodes, or the nodes of its edges when it lists none."""
    names = set(truth.nodes) or {s for s, _ in truth.edges} | {
        owner_node(t) for _, t in truth.edges
    }
    return circuit_sets.level_set(names, "nodes")


def _truth_overlap(store: ResultStore, run: RunRecord, circuit: CircuitRun) -> TruthOverlap:
    truth, name, reason = ground_truth_of(store, run, circuit.task)
    if truth is None:
        return TruthOverlap(run.id, None, reason or "no ground truth")
    members = truth_nodes(truth)
    label = name or "ground truth"
    return TruthOverlap(
        run.id,
        name,
        heads=circuit_sets.pair_overlap(
            circuit.label, label, circuit.heads, circuit_sets.level_set(members, "heads")
        ),
        nodes=circuit_sets.pair_overlap(circuit.label, label, circuit.nodes, members),
        truth_nodes=members,
    )


def circuit_overlap(store: ResultStore, run_ids: list[int]) -> CircuitOverlap:
    """The overlap of 2+ finished circuit runs of one model (raises :class:`OverlapError`)."""
    records = check_runs(store, [int(r) for r in run_ids])
    circuits = [_circuit(store, r) for r in records]
    n_layers, n_heads = _grid_shape(store, records)
    truths = [_truth_overlap(store, r, c) for r, c in zip(records, circuits, strict=True)]
    return CircuitOverlap(records[0].model_spec, circuits, n_layers, n_heads, truths)


def circuit_run_options(store: ResultStore, limit: int = 200) -> list[dict[str, Any]]:
    """Finished circuit runs for the page's picker, newest first, labelled with model and task."""
    options = []
    for run in store.list_runs(kind=KIND, status=RunStatus.FINISHED, limit=limit):
        name, task = _prompt_set(store, run)
        method = run.config.get("method") or KIND
        options.append(
            {"label": f"#{run.id} {method} · {task or name or '?'} · {run.model_spec}",
             "value": run.id}
        )  # fmt: skip
    return options


def default_runs(store: ResultStore, most: int = 3) -> list[int]:
    """The runs the page opens with: the newest finished circuit run's model, its newest run
    per prompt set, at most ``most``."""
    runs = store.list_runs(kind=KIND, status=RunStatus.FINISHED, limit=200)
    if not runs:
        return []
    model = runs[0].model_spec
    chosen: dict[int | None, int] = {}
    for run in runs:
        if run.model_spec == model:
            chosen.setdefault(run.prompt_set_id, run.id)
    return sorted(chosen.values())[-most:]
