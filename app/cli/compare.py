"""``headlab compare``: compare stored runs.

- ``headlab compare heads A B --metric M`` — two runs of one kind, on one model or on two models
  of the same layer × head shape (two checkpoints): the heads whose scores moved most.
- ``headlab compare circuits A B [C …]`` — circuit runs of one model on different prompt sets
  (tasks): node overlap (Jaccard, overlap coefficient), shared and task-specific heads, shared
  edges.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Compare runs: heads across two runs or checkpoints, circuits across tasks.",
    no_args_is_help=True,
)
JSON = typer.Option(False, "--json", help="Print one JSON object.")
