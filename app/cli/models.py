"""``headlab models``: register models (zoo or HuggingFace), list them, show their facts.

Loading a model needs torch; ``analysis`` is imported inside the commands that load, so the rest
of the CLI (and the web process) stays torch-free.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from app import catalog
from app.cli.context import open_store, store_errors
from app.cli.output import emit_json
from storage.records import ModelRecord

app = typer.Typer(help="Register, list and inspect models.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print one JSON object.")
FACT_KEYS = (
    "architecture",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "d_model",
    "d_head",
    "d_mlp",
    "d_vocab",
    "n_ctx",
    "positional_embedding",
    "normalization",
)


def model_summary(record: ModelRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "spec": record.spec,
        "facts": record.facts,
        "created_at": record.created_at,
    }


@app.command("add")
def add(
    spec: str = typer.Argument(..., help="zoo:<name> or hf:<hub id or local folder>"),
    name: str | None = typer.Option(None, help="Name to register it under (default: from spec)."),
    replace: bool = typer.Option(False, "--replace", help="Replace a model of the same name."),
    device: str = typer.Option("cpu", help="Device used to load and check the model."),
    dtype: str = typer.Option("float32", help="float32, float16 or bfloat16."),
    json_out: bool = JSON,
) -> None:
    """Load a model to check it, then register it with its architecture facts."""
    store = open_store()
    with store_errors():
        record = catalog.add_model(store, spec, name, replace=replace, device=device, dtype=dtype)
    if json_out:
        emit_json({"model": model_summary(record)})
        return
    Console().print(f"registered [bold]{record.name}[/bold] ({record.spec})")
    _print_facts(record)


@app.command("list")
def list_models(json_out: bool = JSON) -> None:
    """List registered models and the built-in zoo (usable as zoo:<name> without registering)."""
    store = open_store()
    with store_errors():
        rows = catalog.model_rows(store)
    if json_out:
        emit_json({"models": rows})
        return
    table = Table(
        "name", "spec", "source", "layers", "heads", "kv heads", "d_model", "vocab", "context"
    )
    for row in rows:
        source = "built in" if row["builtin"] else "registered"
        if row.get("checkpoint_of"):
            source += f", {row['checkpoint_of']}"
        table.add_row(
            row["name"],
            row["spec"],
            source,
            *(str(row["facts"].get(k, "")) for k in catalog.FACT_COLUMNS),
        )
    Console().print(table)


def _print_facts(record: ModelRecord) -> None:
    table = Table("fact", "value")
    for key in FACT_KEYS + tuple(k for k in record.facts if k not in FACT_KEYS):
        if key in record.facts:
            table.add_row(key, str(record.facts[key]))
    Console().print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Registered name or spec."),
    json_out: bool = JSON,
) -> None:
    """Show one registered model and its architecture facts."""
    store = open_store()
    with store_errors():
        record = store.get_model(name)
    if json_out:
        emit_json({"model": model_summary(record)})
        return
    Console().print(f"[bold]{record.name}[/bold]  {record.spec}")
    _print_facts(record)


@app.command("build-demo")
def build_demo(
    force: bool = typer.Option(False, "--force", help="Retrain zoo models even if built."),
    json_out: bool = JSON,
) -> None:
    """Train any missing zoo models (shipped ones are reused) and register the whole zoo."""
    from analysis.zoo.demo import ensure_built, register_zoo

    store = open_store()
    trained = ensure_built(force=force)
    with store_errors():
        records = register_zoo(store)
    if json_out:
        emit_json({"trained": trained, "models": [model_summary(r) for r in records]})
        return
    for r in records:
        Console().print(f"{r.name}: {r.spec}" + ("  (trained now)" if r.name in trained else ""))
