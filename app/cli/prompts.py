"""``headlab prompts``: import, generate, list, show, export and delete prompt sets.

A prompt file is CSV or JSONL with columns clean, corrupted, correct, incorrect (and optionally
meta); an answer written ``#<id>`` is a token id, anything else is answer text (see
``analysis.prompts.files``). Files are parsed before any model is loaded, and nothing is stored
unless every row is valid for the model.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from analysis.configs.catalog import PROMPT_TASKS
from analysis.prompts.files import FORMATS, write_prompt_file
from app import catalog
from app.cli.context import open_store, store_errors
from app.cli.output import CliError, emit_json
from storage.records import PromptSetRecord

app = typer.Typer(help="Import, generate, list, show and export prompt sets.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print one JSON object.")
MODEL = typer.Option(..., "--model", help="Model spec the pairs must fit, e.g. zoo:induction-2l")


def set_summary(record: PromptSetRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "source": record.source,
        "model": record.model_spec,
        "n_pairs": record.n_pairs,
        "content_hash": record.content_hash,
        "meta": record.meta,
        "created_at": record.created_at,
    }


def _store_set(record: PromptSetRecord, json_out: bool) -> None:
    if json_out:
        emit_json({"prompt_set": set_summary(record)})
    else:
        Console().print(f"stored prompt set [bold]{record.name}[/bold]: {record.n_pairs} pairs")


@app.command("import")
def import_set(
    file: Path = typer.Argument(..., help="CSV or JSONL file"),
    name: str = typer.Option(..., "--name", help="Name for the new prompt set."),
    model: str = MODEL,
    fmt: str | None = typer.Option(None, "--format", help="csv or jsonl (default: from suffix)"),
    json_out: bool = JSON,
) -> None:
    """Import pairs from a file after checking every row against the model's tokenizer.

    Files up to 50 MB are read row by row (bounded memory); a progress bar goes to stderr."""
    store = open_store()
    with store_errors(), import_progress() as progress:
        record = catalog.import_prompt_set(store, file, name, model, fmt, progress)
    _store_set(record, json_out)


STAGES = {"read": "reading the file", "check": "checking rows", "store": "storing pairs"}


@contextmanager
def import_progress() -> Iterator[catalog.ImportProgress]:
    """A rich progress bar on stderr, one task per import stage (shown only on a terminal)."""
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[amount]}"),
        TimeElapsedColumn(),
    )
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage == "read":
                amount = f"{done / 2**20:.1f}/{total / 2**20:.1f} MB"
            else:
                amount = f"{done:,}/{total:,} rows"
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGES[stage], total=total, amount=amount)
            bar.update(tasks[stage], completed=done, total=total, amount=amount)

        yield report


def _number_list(text: str | None, kind: type, option: str) -> tuple:
    if not text:
        return ()
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        message = f"{text!r}: give comma-separated numbers"
        raise typer.BadParameter(message, param_hint=option) from None


@app.command("generate")
def generate(
    task: str = typer.Argument(..., help=f"One of: {', '.join(PROMPT_TASKS)}."),
    n: int = typer.Option(20, "--n", min=1, help="Number of pairs."),
    model: str = MODEL,
    name: str | None = typer.Option(None, "--name", help="Default: <task>-<model>-<n>-s<seed>"),
    seed: int = typer.Option(0, "--seed"),
    needle_length: int = typer.Option(6, "--needle-length", min=2, help="needle: its units"),
    needle_query: int = typer.Option(
        2, "--needle-query", min=1, help="needle: units repeated as the query"
    ),
    contexts: str | None = typer.Option(
        None, "--contexts", help="needle: context lengths, e.g. 16,32,60 (default: four)"
    ),
    depths: str | None = typer.Option(
        None, "--depths", help="needle: depths in [0,1], e.g. 0,0.5,1 (default: 0,.25,.5,.75,1)"
    ),
    json_out: bool = JSON,
) -> None:
    """Generate a seeded task prompt set that is valid for the model's tokenizer."""
    options = {
        "needle_length": needle_length,
        "query": needle_query,
        "contexts": _number_list(contexts, int, "--contexts"),
        "depths": _number_list(depths, float, "--depths"),
    }
    default = {"needle_length": 6, "query": 2, "contexts": (), "depths": ()}
    if task != "needle" and options != default:
        raise typer.BadParameter("needle options apply to the needle task only", param_hint=task)
    store = open_store()
    with store_errors():
        record = catalog.generate_prompt_set(
            store, task, model, n, seed, name, options if task == "needle" else None
        )
    _store_set(record, json_out)


@app.command("list")
def list_sets(json_out: bool = JSON) -> None:
    """List prompt sets."""
    store = open_store()
    with store_errors():
        records = store.list_prompt_sets()
    if json_out:
        emit_json({"prompt_sets": [set_summary(r) for r in records]})
        return
    table = Table("id", "name", "pairs", "model", "source", "created")
    for r in records:
        table.add_row(
            str(r.id),
            r.name,
            str(r.n_pairs),
            r.model_spec or "",
            r.source,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    Console().print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Prompt set name or id."),
    limit: int = typer.Option(10, min=0, help="How many pairs to show."),
    json_out: bool = JSON,
) -> None:
    """Show a prompt set and its first pairs."""
    store = open_store()
    with store_errors():
        record = store.get_prompt_set(name)
        pairs = store.get_pairs(record.id)[:limit]
    if json_out:
        emit_json({"prompt_set": set_summary(record), "pairs": pairs})
        return
    Console().print(
        f"[bold]{record.name}[/bold]: {record.n_pairs} pairs, model {record.model_spec}"
    )
    table = Table("#", "clean", "corrupted", "correct", "incorrect")
    for p in pairs:
        table.add_row(str(p.index), p.clean, p.corrupted, repr(p.correct), repr(p.incorrect))
    Console().print(table)


@app.command("export")
def export(
    name: str = typer.Argument(..., help="Prompt set name or id."),
    fmt: str = typer.Option("jsonl", "--format", help="csv or jsonl"),
    out: Path | None = typer.Option(None, "--out", help="File to write (default: stdout)."),
    json_out: bool = JSON,
) -> None:
    """Export a prompt set as CSV or JSONL (re-importable exactly)."""
    if fmt not in FORMATS:
        raise CliError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    store = open_store()
    with store_errors():
        record = store.get_prompt_set(name)
        text = write_prompt_file(list(store.get_pairs(record.id)), fmt)
    if out is not None:
        out.write_text(text, encoding="utf-8")
    if json_out:
        emit_json(
            {
                "prompt_set": set_summary(record),
                "format": fmt,
                "path": str(out) if out else None,
                "content": None if out else text,
            }
        )
    elif out is None:
        sys.stdout.write(text)
    else:
        Console().print(f"wrote {record.n_pairs} pairs to {out}")


@app.command("delete")
def delete(name: str = typer.Argument(..., help="Prompt set name.")) -> None:
    """Delete a prompt set (refused while runs use it)."""
    store = open_store()
    with store_errors():
        store.delete_prompt_set(name)
    Console().print(f"deleted prompt set {name}")
