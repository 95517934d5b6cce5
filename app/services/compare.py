"""Comparing runs: two runs of the same kind (run picker, the metrics both store), or every run
of a sweep (the metrics its finished runs share, one panel per run).

Two runs are comparable when they are of one kind and their models have the same layer × head
shape: one model on two prompt sets, or two models — two checkpoints of one training run (the
zoo ships ``induction-2l-early``, step 150 of ``induction-2l``), a base and a fine-tuned model.
The shape is the registered model's ``n_layers`` × ``n_heads`` (a zoo model's shipped config when
it is not registered; else the run's own head grid). The *movers* are the heads whose score
moved most between the two runs: |B − A| largest first, with each head's rank in A and in B
(``HeadGrid.rank``: 1 + the heads of larger |value|).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.zoo import is_built, spec_checkpoint
from app.catalog import zoo_facts
from app.services import runs as run_service
from app.services.context import WebContext
from storage.errors import NotFound
from storage.records import RunRecord

if TYPE_CHECKING:
    from app.services.results import ResultsReader
    from storage.store import ResultStore

MOVER_COLUMNS = ("layer", "head", "a", "b", "delta", "rank_a", "rank_b")


class CompareError(ValueError):
    """Two runs cannot be compared as asked; the message names why and what to pick instead."""


def run_options(ctx: WebContext) -> list[dict[str, Any]]:
    runs = run_service.finished_runs(ctx.store, limit=300)
    names = run_service.prompt_set_names(ctx.store)
    return [{"label": run_service.run_label(r, names), "value": r.id} for r in runs]


# -- the models of two runs -------------------------------------------------------------------


def model_label(store: ResultStore, spec: str) -> str:
    """A zoo model's name, else the registered name of the model with ``spec``, else the spec."""
    if spec.startswith("zoo:"):
        return spec.removeprefix("zoo:")
    try:
        return store.get_model(spec).name
    except NotFound:
        return spec


def model_shape(reader: ResultsReader, run: RunRecord) -> tuple[int, int] | None:
    """(n_layers, n_heads) of the run's model: its registered facts, a zoo model's shipped
    config, else the run's stored head grid; None when none of them says."""
    facts: dict[str, Any] = {}
    try:
        facts = reader.store.get_model(run.model_spec).facts
    except NotFound:
        name = run.model_spec.removeprefix("zoo:")
        if run.model_spec.startswith("zoo:") and is_built(name):
            facts = zoo_facts(name)
    if facts.get("n_layers") and facts.get("n_heads"):
        return int(facts["n_layers"]), int(facts["n_heads"])
    grids = [g for g in reader.tables(run.id).aggregate.values() if not g.empty]
    if not grids:
        return None
    n_layers = max(int(g["layer"].max()) for g in grids) + 1
    return n_layers, max(int(g["head"].max()) for g in grids) + 1


def shape_text(shape: tuple[int, int] | None) -> str:
    return "an unknown shape" if shape is None else f"{shape[0]} layers × {shape[1]} heads"


@dataclass(frozen=True)
class RunPair:
    """Two runs to compare and what their models are."""

    a: RunRecord
    b: RunRecord
    model_a: str
    model_b: str
    shape_a: tuple[int, int] | None
    shape_b: tuple[int, int] | None

    @property
    def cross_model(self) -> bool:
        return self.a.model_spec != self.b.model_spec

    def problem(self) -> str:
        """Why the two runs cannot be compared, or ``""``."""
        a, b = self.a, self.b
        if a.kind != b.kind:
            return (
                f"Run #{a.id} is {a.kind} and run #{b.id} is {b.kind}: compare runs of the "
                "same kind."
            )
        if self.shape_a != self.shape_b:
            return (
                f"Run #{a.id}'s model {self.model_a} has {shape_text(self.shape_a)} and run "
                f"#{b.id}'s model {self.model_b} has {shape_text(self.shape_b)}: compare runs "
                "of models with the same layer × head shape."
            )
        return ""

    def relation(self) -> str:
        """``checkpoint comparison: X → Y (…)`` when the models differ, else ``""``."""
        if not self.cross_model:
            return ""
        known = ""
        for spec, name in ((self.a.model_spec, self.model_a), (self.b.model_spec, self.model_b)):
            if (step := spec_checkpoint(spec)) is not None:
                known += f"; {name} is step {step[1]} of {step[0]}'s training"
        return (
            f"Checkpoint comparison: {self.model_a} → {self.model_b} "
            f"(both {shape_text(self.shape_a)}{known})."
        )


def run_pair(reader: ResultsReader, a: int, b: int) -> RunPair:
    """The runs ``a`` and ``b`` with their models' names and shapes (NotFound if one is not
    stored)."""
    run_a, run_b = reader.store.get_run(a), reader.store.get_run(b)
    store = reader.store
    return RunPair(
        run_a, run_b,
        model_label(store, run_a.model_spec), model_label(store, run_b.model_spec),
        model_shape(reader, run_a), model_shape(reader, run_b),
    )  # fmt: skip


def shared_metrics(reader: ResultsReader, a: int, b: int) -> list[str]:
    return sorted(set(reader.metrics(a)) & set(reader.metrics(b)))


def default_pair(ctx: WebContext, a: str | None, b: str | None) -> tuple[int | None, int | None]:
    """The requested runs, else a comparable pair of the newest finished runs: two runs of one
    kind, on models of one shape, that share a per-head metric. A zoo checkpoint and its full
    run come first (the checkpoint as A), then two models of one shape, then one model; within
    each, the pair with the newest run."""
    if a and a.isdigit() and b and b.isdigit():
        return int(a), int(b)
    runs = run_service.finished_runs(ctx.store, limit=100)
    shapes: dict[str, tuple[int, int] | None] = {}
    for run in runs:
        if run.model_spec not in shapes:
            shapes[run.model_spec] = model_shape(ctx.reader, run)
    candidates: list[tuple[int, int, int, int]] = []  # (preference, order, A, B)
    for i, newer in enumerate(runs):
        for older in runs[i + 1 :]:
            shape = shapes[older.model_spec]
            if older.kind != newer.kind or shape is None or shape != shapes[newer.model_spec]:
                continue
            first, second = (newer, older) if _is_checkpoint(newer, older) else (older, newer)
            preference = 2 if first.model_spec == second.model_spec else 1
            preference = 0 if _is_checkpoint(first, second) else preference
            candidates.append((preference, len(candidates), first.id, second.id))
    metrics: dict[int, set[str]] = {}
    for _, _, first_id, second_id in sorted(candidates):
        for run_id in (first_id, second_id):
            if run_id not in metrics:
                metrics[run_id] = set(ctx.reader.metrics(run_id))
        if metrics[first_id] & metrics[second_id]:
            return first_id, second_id
    return None, None


def _is_checkpoint(early: RunRecord, late: RunRecord) -> bool:
    """True when ``early``'s model is a zoo checkpoint of ``late``'s model's training run."""
    parent = spec_checkpoint(early.model_spec)
    return parent is not None and f"zoo:{parent[0]}" == late.model_spec


def common_metrics(ctx: WebContext, a: int | None, b: int | None) -> tuple[list[str], str]:
    """Metrics both runs store, and a message: why they cannot be compared (no metrics then),
    or which two models a cross-model comparison is of."""
    if a is None or b is None:
        return [], "Pick two finished runs of the same kind."
    pair = run_pair(ctx.reader, a, b)
    problem = pair.problem()
    if problem:
        return [], problem
    shared = shared_metrics(ctx.reader, a, b)
    if not shared:
        return [], f"Runs #{a} and #{b} share no per-head metric."
    return shared, pair.relation()


def first_metric(ctx: WebContext, a: int | None, metrics: list[str]) -> str | None:
    """The metric the page shows first: the Heads page's choice for run A's kind."""
    from app.services.heads_view import default_metric

    return default_metric(metrics, ctx.store.get_run(a).kind if a is not None else None)


def movers(reader: ResultsReader, a: int, b: int, metric: str, top: int = 10) -> pd.DataFrame:
    """The ``top`` heads whose ``metric`` moved most from run ``a`` to run ``b``: columns
    ``MOVER_COLUMNS`` (``delta`` = B − A), largest |delta| first (ties by layer, head).
    Raises CompareError when the runs are not comparable or do not both store ``metric``."""
    if top < 1:
        raise CompareError(f"--top must be at least 1, got {top}")
    problem = run_pair(reader, a, b).problem()
    if problem:
        raise CompareError(problem)
    shared = shared_metrics(reader, a, b)
    if metric not in shared:
        raise CompareError(
            f"runs #{a} and #{b} do not both store {metric!r}; metrics both have: "
            + (", ".join(shared) or "(none)")
        )
    return mover_table(reader.head_grid(a, metric), reader.head_grid(b, metric), top)


def mover_table(grid_a: Any, grid_b: Any, top: int) -> pd.DataFrame:
    """Movers of two ``HeadGrid``s of one metric (heads present in both, NaN left out)."""
    keys = ["layer", "head"]
    merged = grid_a.frame[[*keys, "value"]].merge(
        grid_b.frame[[*keys, "value"]], on=keys, suffixes=("_a", "_b")
    )
    merged = merged.rename(columns={"value_a": "a", "value_b": "b"}).dropna(subset=["a", "b"])
    merged["delta"] = merged["b"] - merged["a"]
    merged["rank_a"] = [grid_a.rank(v) for v in merged["a"]]
    merged["rank_b"] = [grid_b.rank(v) for v in merged["b"]]
    merged["size"] = merged["delta"].abs()
    ordered = merged.sort_values(["size", *keys], ascending=[False, True, True], kind="stable")
    out = ordered.head(top)[list(MOVER_COLUMNS)].reset_index(drop=True)
    return out.astype({"layer": int, "head": int, "rank_a": int, "rank_b": int})


def mover_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The movers as table rows for a page (``id`` = ``"L.H"``, the row a click selects)."""
    return [
        {
            "id": f"{int(r.layer)}.{int(r.head)}",
            "head": f"{int(r.layer)}.{int(r.head)}",
            "A": round(float(r.a), 4),
            "B": round(float(r.b), 4),
            "Δ (B − A)": round(float(r.delta), 4),
            "rank in A": int(r.rank_a),
            "rank in B": int(r.rank_b),
        }
        for r in table.itertuples()
    ]


def movers_spec(a: int, b: int, metric: str, top: int = 10) -> dict[str, Any]:
    return {"kind": "compare_movers", "a": int(a), "b": int(b), "metric": metric, "top_k": top}


def prompt_options(ctx: WebContext, a: int | None, b: int | None) -> list[dict[str, Any]]:
    """The prompts both runs store patterns of (labelled by run A's tokens)."""
    if a is None or b is None:
        return []
    try:
        specs = mover_pattern_specs(ctx.reader, a, b, (0, 0), 0)
    except NotFound:
        return []
    if any(isinstance(spec, str) for spec in specs):
        return []
    tokens_a, tokens_b = ctx.reader.prompt_tokens(a), ctx.reader.prompt_tokens(b)
    n = min(len(tokens_a), len(tokens_b))
    return [{"label": f"{i}: {''.join(t)[:40]}", "value": i} for i, t in enumerate(tokens_a[:n])]


def mover_pattern_specs(
    reader: ResultsReader, a: int, b: int, head: tuple[int, int], prompt: int
) -> list[dict[str, Any] | str]:
    """Per run, the ``pattern`` spec of ``head`` on ``prompt``, or why there is none."""
    from app.services.results import PATTERNS

    out: list[dict[str, Any] | str] = []
    for run_id in (a, b):
        names = {art.name for art in reader.store.artifacts(run_id)}
        if PATTERNS not in names:
            out.append(f"Run #{run_id} stores no attention patterns (heads runs do).")
            continue
        layer, h = head
        out.append({"kind": "pattern", "run": run_id, "layer": layer, "head": h, "prompt": prompt})
    return out


# circuit runs store one node per head: its score and whether it is in the circuit
NODE_METRICS = {"circuit node score": "score", "in circuit": "in_circuit"}


def head_metrics(reader: ResultsReader, run_id: int) -> list[str]:
    """A run's per-head metrics, with its circuit nodes' as ``NODE_METRICS`` when it has any."""
    metrics = list(reader.metrics(run_id))
    nodes = reader.store.nodes(run_id)
    if not nodes.empty and nodes["head"].notna().any():
        metrics += list(NODE_METRICS)
    return metrics


def head_frame(reader: ResultsReader, run_id: int, metric: str) -> pd.DataFrame:
    """Long-format per-head rows (metric, layer, head, value) of one metric of a run."""
    if metric not in NODE_METRICS:
        return reader.head_grid(run_id, metric).frame
    nodes = reader.store.nodes(run_id)
    nodes = nodes[nodes["head"].notna()]
    return pd.DataFrame(
        {
            "metric": metric,
            "layer": nodes["layer"].astype(int),
            "head": nodes["head"].astype(int),
            "value": nodes[NODE_METRICS[metric]].astype(float),
        }
    )


def sweep_view(ctx: WebContext, sweep_id: int) -> tuple[Any, list[Any], list[str]]:
    """(sweep, its runs, the per-head metrics every finished run of it stores)."""
    sweep = ctx.store.get_sweep(sweep_id)
    runs = ctx.store.sweep_runs(sweep.id)
    finished = [r for r in runs if r.status.value == "FINISHED"]
    shared: set[str] | None = None
    for run in finished:
        metrics = set(head_metrics(ctx.reader, run.id))
        shared = metrics if shared is None else shared & metrics
    return sweep, runs, sorted(shared or [])


def sweep_rows(sweep: Any, runs: list[Any]) -> list[dict[str, Any]]:
    """One table row per run of a sweep: what varies, its status, and its scalar summary."""
    from app.sweeps import varied_values

    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": f"#{run.id}", **varied_values(sweep.spec, run)}
        row["status"] = run.status.value
        for key, value in run.summary.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                row[key] = round(float(value), 4)
        rows.append(row)
    return rows


def sweep_figure_spec(sweep_id: int, runs: list[Any], metric: str | None) -> dict[str, Any] | None:
    finished = [r.id for r in runs if r.status.value == "FINISHED"]
    if not metric or not finished:
        return None
    return {"kind": "compare_sweep", "sweep": sweep_id, "runs": finished, "metric": metric}
