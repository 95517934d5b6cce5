"""Adding prompt sets and models from the web through catalog runs (torch-free).

Checking pairs against a tokenizer, generating task pairs and loading a model need the model, so
the web process only enqueues a run (``prompts-import``, ``prompts-generate``, ``model-add``, see
``analysis.configs.catalog``) and polls it; a worker does the work and commits the new prompt
set / model with the run. The web side checks everything it can first (form fields, a free
name, the file's structure) so that most mistakes never reach the queue.

An upload is parsed here (``prompt_upload``), then re-written as canonical JSONL
(``analysis.prompts.files`` format, torch-free) for the worker: the rows the worker numbers are
exactly the rows checked here, so the worker's ``row N: …`` errors point at the uploaded rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.configs.catalog import default_model_name, default_set_name, parse_row_errors
from analysis.prompts.files import write_prompt_file
from app.services.launch import LaunchError, build_config, enqueue, refuse_server_paths
from app.services.prompt_upload import RowError, decode_upload, parse_prompt_file
from storage.errors import NotFound
from storage.records import RunRecord
from storage.store import ResultStore

FACT_ORDER = (
    "architecture", "n_layers", "n_heads", "n_kv_heads", "d_model", "d_head", "d_mlp", "d_vocab",
    "n_ctx", "positional_embedding", "normalization", "n_params", "dtype",
)  # fmt: skip


@dataclass(frozen=True)
class RunState:
    """What a page shows about a catalog run it is waiting for."""

    run_id: int
    kind: str
    status: str
    progress: float
    message: str
    error: str
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ("QUEUED", "RUNNING")

    def waiting_text(self) -> str:
        if self.status == "QUEUED":
            return (
                f"Run #{self.run_id} ({self.kind}) is queued, waiting for a worker "
                "(`headlab serve` starts them; or run `headlab worker`)."
            )
        return f"Run #{self.run_id} ({self.kind}): {self.message} ({self.progress:.0%})."


def run_state(store: ResultStore, run_id: int) -> RunState:
    run = store.get_run(run_id)
    return RunState(
        run.id, run.kind, run.status.value, run.progress, run.message, run.error or "", run.summary
    )


def _set_exists(store: ResultStore, name: str) -> bool:
    try:
        store.get_prompt_set(name)
    except NotFound:
        return False
    return True


def _taken(name: str) -> str:
    return f"a prompt set named {name!r} already exists; choose another name"


def enqueue_import(
    store: ResultStore, name: str | None, model: str | None, filename: str, contents: str
) -> tuple[RunRecord | None, list[RowError]]:
    """Check the upload's structure and enqueue its ``prompts-import`` run, or say what is wrong
    (each error names its row and column; row None means the whole file or a form field)."""
    name = (name or "").strip() or Path(filename).stem
    if not model:
        return None, [RowError(None, "model", "choose the model whose tokenizer the pairs fit")]
    parsed = parse_prompt_file(filename, decode_upload(contents))
    if parsed.errors:
        return None, parsed.errors
    if _set_exists(store, name):
        return None, [RowError(None, "name", _taken(name))]
    values = {
        "model": model,
        "name": name,
        "content": write_prompt_file(parsed.pairs, "jsonl"),
        "format": "jsonl",
        "filename": Path(filename).name,
    }
    try:
        return enqueue(store, "prompts-import", values), []
    except LaunchError as exc:
        return None, [RowError(None, f, m) for f, m in exc.fields.items()]


NEEDLE_FIELDS = ("needle_length", "needle_query", "contexts", "depths")


def _comma_list(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list | tuple):
        return [str(v).strip() for v in raw if str(v).strip()]
    return [part.strip() for part in str(raw).split(",") if part.strip()]


def generate_form(
    task: str | None,
    n: Any,
    seed: Any,
    model: str | None,
    name: str | None,
    needle: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Generate card's inputs as an ``enqueue_generate`` form. The needle fields (length,
    query length, comma-separated contexts and depths) count for the needle task only: other
    tasks leave them out, so a hidden field's leftover value never trips their check."""
    form: dict[str, Any] = {"task": task, "n": n, "seed": seed, "model": model, "name": name}
    if task == "needle" and needle:
        form["needle_length"] = needle.get("needle_length")
        form["needle_query"] = needle.get("needle_query")
        form["contexts"] = _comma_list(needle.get("contexts"))
        form["depths"] = _comma_list(needle.get("depths"))
    return form


def _depth_errors(config: dict[str, Any]) -> dict[str, str]:
    bad = [d for d in config.get("depths") or [] if not 0.0 <= float(d) <= 1.0]
    if bad:
        return {"depths": f"each depth must lie in [0, 1] (0: the filler's start); got {bad}"}
    return {}


def enqueue_generate(store: ResultStore, form: dict[str, Any]) -> RunRecord:
    """Enqueue a ``prompts-generate`` run; ``LaunchError`` names the bad fields."""
    refuse_server_paths(store, "prompts-generate", form)
    config = build_config("prompts-generate", form)
    if errors := _depth_errors(config):
        raise LaunchError(errors)
    name = config["name"] or default_set_name(
        config["task"], config["model"], config["n"], config["seed"]
    )
    if _set_exists(store, name):
        raise LaunchError({"name": _taken(name)})
    return enqueue(store, "prompts-generate", {**form, "name": name})


def enqueue_model_add(
    store: ResultStore, name: str | None, spec: str | None, replace: bool
) -> RunRecord:
    """Enqueue a ``model-add`` run; ``LaunchError`` names the bad fields."""
    form = {"model": spec, "name": name, "replace": replace}
    refuse_server_paths(store, "model-add", form)
    config = build_config("model-add", form)
    name = config["name"] or default_model_name(config["model"])
    if not replace:
        try:
            store.get_model(name)
        except NotFound:
            pass
        else:
            raise LaunchError({"name": f"a model named {name!r} exists; tick replace or rename"})
    return enqueue(store, "model-add", form)


def _uploaded_rows(run: RunRecord) -> dict[int, dict[str, Any]]:
    """Data row number → the pair's cells, from the canonical JSONL in the run's config."""
    lines = [line for line in str(run.config.get("content", "")).splitlines() if line.strip()]
    rows = {}
    for number, line in enumerate(lines, start=1):
        try:
            rows[number] = json.loads(line)
        except json.JSONDecodeError:
            continue
    return rows


def import_error_rows(store: ResultStore, run_id: int) -> list[dict[str, Any]]:
    """One table row per token-level problem of a failed import: the row, its cells, the error."""
    run = store.get_run(run_id)
    problems = parse_row_errors(run.error or "")
    cells = _uploaded_rows(run) if problems else {}
    out = []
    for row, message in problems:
        pair = cells.get(row, {})
        out.append(
            {
                "row": row,
                **{c: pair.get(c, "") for c in ("clean", "corrupted", "correct", "incorrect")},
                "error": message,
            }
        )
    return out


def fact_rows(facts: dict[str, Any]) -> list[dict[str, Any]]:
    keys = [k for k in FACT_ORDER if k in facts] + [k for k in facts if k not in FACT_ORDER]
    return [{"fact": k, "value": "" if facts[k] is None else str(facts[k])} for k in keys]
