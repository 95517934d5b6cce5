"""``headlab compare``: compare stored runs.

- ``headlab compare heads A B --metric M`` — two runs of one kind, on one model or on two models
  of the same layer × head shape (two checkpoints): the heads whose scores moved most.
- ``headlab compare circuits A B [C …]`` — circuit runs of one model on different prompt sets
  (tasks): node overlap (Jaccard, overlap coefficient), shared and task-specific heads, shared
  edges.
"""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(
    help="Compare runs: heads across two runs or checkpoints, circuits across tasks.",
    no_args_is_help=True,
)
JSON = typer.Option(False, "--json", help="Print one JSON object.")


@app.command("heads")
def heads(
    a: int = typer.Argument(..., help="Run id of A (e.g. the early checkpoint)."),
    b: int = typer.Argument(..., help="Run id of B, of the same kind and model shape."),
    metric: str = typer.Option(..., "--metric", help="A per-head metric both runs store."),
    top: int = typer.Option(10, "--top", help="How many heads to list."),
    json_out: bool = JSON,
) -> None:
    """The heads whose --metric moved most from run A to run B (|B − A|, largest first), with
    A, B, Δ and each head's rank in A and in B (1 = largest |value|). A and B are runs of one
    kind on one model or on two models of the same layer × head shape (two checkpoints)."""
    from rich.console import Console
    from rich.table import Table

    from app.cli.context import open_store, store_errors
    from app.cli.output import CliError, emit_json
    from app.services.compare import CompareError, movers, run_pair
    from app.services.results import ResultsReader

    with store_errors():
        reader = ResultsReader(open_store())
        try:
            pair = run_pair(reader, a, b)
            table = movers(reader, a, b, metric, top)
        except CompareError as exc:
            raise CliError(str(exc)) from None
    rows = table.to_dict(orient="records")
    if json_out:
        emit_json(
            {"a": a, "b": b, "metric": metric, "model_a": pair.model_a, "model_b": pair.model_b}
            | {"kind": pair.a.kind, "shape": list(pair.shape_a or ()), "movers": rows}
        )
        return
    console = Console()
    console.print(pair.relation() or f"run #{a} → run #{b} on {pair.model_a}")
    out = Table("head", "A", "B", "Δ (B − A)", "rank in A", "rank in B",
                title=f"{metric}: the {len(rows)} heads that moved most")  # fmt: skip
    for row in rows:
        out.add_row(
            f"{row['layer']}.{row['head']}", f"{row['a']:.4f}", f"{row['b']:.4f}",
            f"{row['delta']:+.4f}", str(row["rank_a"]), str(row["rank_b"]),
        )  # fmt: skip
    console.print(out)


EDGES_SHOWN = 15  # shared edges the text output lists, strongest first


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _pair_table(title: str, by_level: dict[str, list[Any]], short: dict[str, str]) -> Any:
    from rich.table import Table

    table = Table("A", "B", "heads ∩/∪", "Jaccard", "overlap", "nodes ∩/∪", "Jaccard",
                  "overlap", title=title, title_justify="left")  # fmt: skip
    for heads, nodes in zip(by_level["heads"], by_level["nodes"], strict=True):
        table.add_row(
            short[heads.a], short[heads.b],
            f"{heads.n_shared}/{heads.n_union}", _score(heads.jaccard), _score(heads.overlap),
            f"{nodes.n_shared}/{nodes.n_union}", _score(nodes.jaccard), _score(nodes.overlap),
        )  # fmt: skip
    return table


@app.command("circuits")
def circuits(
    runs: list[int] = typer.Argument(..., help="Two or more circuit run ids of one model."),
    json_out: bool = JSON,
) -> None:
    """Overlap of circuits found on different tasks: Jaccard and overlap coefficient per pair
    (heads, and nodes: heads + MLPs), shared and task-specific heads, shared edges, and each
    circuit against its task's ground truth."""
    from rich.console import Console
    from rich.table import Table

    from analysis.circuits.overlap import pairwise
    from app.cli.context import open_store, store_errors
    from app.cli.output import CliError, emit_json
    from app.services.overlap import OverlapError, circuit_overlap

    with store_errors():
        try:
            found = circuit_overlap(open_store(), runs)
        except OverlapError as exc:
            raise CliError(str(exc)) from None
    if json_out:
        emit_json(found.to_json())
        return
    console = Console()
    short = {r.label: f"#{r.id}" for r in found.runs}
    console.print(f"circuit overlap on {found.model}")
    for r in found.runs:
        console.print(
            f"  #{r.id}  {r.task or '(no task)'} · prompt set {r.prompt_set} · {r.method} · "
            f"{len(r.heads)} heads, {len(r.nodes) - len(r.heads)} MLPs, {len(r.edges)} edges"
        )
    levels = ("heads", "nodes")
    console.print(_pair_table("circuits", {lv: found.pairs(lv) for lv in levels}, short))
    truths = {lv: found.truth_sets(lv) for lv in levels}
    if truths["heads"] is not None and truths["nodes"] is not None:
        by_level = {lv: pairwise(truths[lv] or {}) for lv in levels}
        console.print(_pair_table("their tasks' ground truths", by_level, short))
    console.print(f"heads in every circuit: {', '.join(found.shared('heads')) or '(none)'}")
    for label, nodes in found.specific("nodes").items():
        console.print(f"only in {short[label]}: {', '.join(nodes) or '(none)'}")
    edges = found.shared_edges()
    shown = edges[:EDGES_SHOWN]
    more = (
        f" (the {len(shown)} strongest below; --json lists all)" if len(edges) > len(shown) else ""
    )
    console.print(f"edges in every circuit: {len(edges)}{more}")
    if edges:
        table = Table("source", "target", *(short[r.label] for r in found.runs))
        for edge in shown:
            scores = [f"{edge[f'score {r.label}']:.4g}" for r in found.runs]
            table.add_row(edge["source"], edge["target"], *scores)
        console.print(table)
    truth = Table("run", "ground truth", "heads Jaccard", "overlap", "found/true",
                  title="each circuit against its task's ground truth (heads)",
                  title_justify="left")  # fmt: skip
    reasons = []
    for t, row in zip(found.truths, found.truth_rows(), strict=True):
        if t.heads is None:
            reasons.append(f"#{t.run}: no ground truth: {t.reason}")
            continue
        name = row["ground_truth"].removeprefix(f"{found.model}/")
        jaccard, coefficient = _score(t.heads.jaccard), _score(t.heads.overlap)
        truth.add_row(f"#{t.run}", name, jaccard, coefficient, row["heads found/true"])
    if truth.row_count:
        console.print(truth)
    for line in reasons:
        console.print(line, soft_wrap=True)
