"""Models and prompt sets: registering, listing, generating and importing them.

The CLI (``headlab models …``, ``headlab prompts …``) and the Python API (``headlab.Lab``) call
these functions, so both check, name and store things the same way. Loading a model needs
torch; ``analysis`` modules that import torch are imported inside the functions that load.
Every failure raises :class:`CatalogError` with a message that names the problem and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from analysis.configs.catalog import MAX_GENERATED
from analysis.prompts.files import PromptFileError, iter_prompt_file, shown_name
from analysis.zoo import CONFIG_FILE, checkpoint_label, is_built, zoo_folder, zoo_names
from storage.catalog_repo import check_name
from storage.errors import InvalidInput, NotFound
from storage.records import ModelRecord, PairIn, PromptSetRecord
from storage.store import ResultStore

EXIT_NAME_TAKEN = 3
IMPORT_REPORT_ROWS = 4096
ImportProgress = Callable[[str, int, int], None]  # (stage, done, total)
FACT_COLUMNS = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_vocab", "n_ctx")


class CatalogError(ValueError):
    """A model or prompt set cannot be added as asked. ``exit_code`` is the CLI's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_model_spec(spec: str, device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any]:
    """(loaded model, parsed spec) for a spec string such as ``zoo:induction-2l``."""
    from analysis.model_specs import parse_model_spec
    from analysis.models import ModelLoadError, ModelSpecError, load_model

    try:
        parsed = parse_model_spec(spec)
        return load_model(parsed, device=device, dtype=dtype), parsed
    except (ModelSpecError, ModelLoadError) as exc:
        raise CatalogError(str(exc)) from None


def default_model_name(spec: Any) -> str:
    """zoo:<name> -> <name>; hf:<owner/name> -> <owner/name>; hf:<folder> -> folder name."""
    if spec.kind == "zoo" or not spec.is_local:
        return spec.target
    return Path(spec.target).name


def add_model(
    store: ResultStore,
    spec: str,
    name: str | None = None,
    *,
    replace: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
) -> ModelRecord:
    """Load a model to check it, then register it with its architecture facts."""
    from analysis.models import model_facts

    loaded, parsed = load_model_spec(spec, device, dtype)
    return store.add_model(
        name or default_model_name(parsed), parsed.spec, model_facts(loaded), replace=replace
    )


def zoo_facts(name: str) -> dict[str, Any]:
    """A built zoo model's architecture facts, read from its shipped config (torch-free)."""
    with open(zoo_folder(name) / CONFIG_FILE, encoding="utf-8") as fh:
        tl = json.load(fh).get("tl_config", {})
    facts = {k: tl[k] for k in ("n_layers", "n_heads", "d_model", "d_vocab", "n_ctx") if k in tl}
    facts["n_kv_heads"] = tl.get("n_key_value_heads") or tl.get("n_heads")
    return facts


def model_rows(store: ResultStore) -> list[dict[str, Any]]:
    """Registered models, then the built-in zoo models not registered yet: what ``headlab
    models list`` shows in any home. ``builtin`` is True for every zoo model; ``id`` and
    ``created_at`` are None for one that is not registered (``zoo:<name>`` works anyway);
    ``checkpoint_of`` names the training run a zoo checkpoint stops early (else None)."""
    rows: list[dict[str, Any]] = [
        {
            "id": r.id,
            "name": r.name,
            "spec": r.spec,
            "builtin": r.spec.startswith("zoo:"),
            "registered": True,
            "facts": r.facts,
            "checkpoint_of": checkpoint_label(r.spec),
            "created_at": r.created_at,
        }
        for r in store.list_models()
    ]
    registered = {row["spec"] for row in rows}
    for name in zoo_names():
        spec = f"zoo:{name}"
        if spec not in registered and is_built(name):
            rows.append(
                {"id": None, "name": name, "spec": spec, "builtin": True, "registered": False}
                | {"facts": zoo_facts(name), "checkpoint_of": checkpoint_label(spec)}
                | {"created_at": None}
            )
    return rows


def require_new_set_name(store: ResultStore, name: str) -> None:
    try:
        check_name(name, "prompt set")
    except InvalidInput as exc:
        raise CatalogError(str(exc)) from None
    try:
        store.get_prompt_set(name)
    except NotFound:
        return
    raise CatalogError(
        f"a prompt set named {name!r} already exists; choose another --name or delete it "
        f"first (`headlab prompts delete {name}`)",
        EXIT_NAME_TAKEN,
    )


def generate_prompt_set(
    store: ResultStore,
    task: str,
    model: str,
    n: int = 20,
    seed: int = 0,
    name: str | None = None,
    needle: dict[str, Any] | None = None,
) -> PromptSetRecord:
    """Generate a seeded task prompt set valid for the model's tokenizer, and store it.
    ``needle`` holds the needle task's options (``NeedleOptions`` fields)."""
    from analysis.prompts.generators import GeneratorError, generate_pairs
    from analysis.prompts.needle import needle_options

    if not 1 <= n <= MAX_GENERATED:
        raise CatalogError(
            f"n must be between 1 and {MAX_GENERATED:,} pairs, got {n:,}; for more, generate "
            "several sets with different --seed values"
        )
    loaded, parsed = load_model_spec(model)
    name = name or f"{task}-{parsed.spec.split(':', 1)[1].rstrip('/').split('/')[-1]}-{n}-s{seed}"
    require_new_set_name(store, name)
    try:
        options = needle_options(needle) if needle else None
        pairs = generate_pairs(loaded, task, n, seed, options)
    except (GeneratorError, ValueError, TypeError) as exc:
        raise CatalogError(str(exc)) from None
    meta = {"task": task, "seed": seed, **({"needle_options": needle} if needle else {})}
    return store.add_prompt_set(name, pairs, f"generate:{task}", parsed.spec, meta)


def import_prompt_set(
    store: ResultStore,
    file: Path | str,
    name: str,
    model: str,
    fmt: str | None = None,
    progress: ImportProgress | None = None,
) -> PromptSetRecord:
    """Import pairs from a CSV/JSONL file after checking every row against the tokenizer.

    Memory stays bounded by one chunk of rows, whatever the file's length (up to
    ``MAX_FILE_BYTES``): the file is read row by row three times — parsed (so a malformed file
    fails before a model loads), checked against the tokenizer into a scratch file of pairs,
    and stored from it in one transaction. ``progress(stage, done, total)`` reports each pass:
    ``read`` in bytes, ``check`` and ``store`` in rows. Nothing is stored unless every row is
    valid.
    """
    from analysis.prompts.validate import PromptValidationError, TokenizerView, iter_valid_pairs

    file = Path(file)
    report = progress or (lambda stage, done, total: None)
    require_new_set_name(store, name)
    try:
        n_rows = sum(
            1 for _ in iter_prompt_file(file, fmt, lambda done, size: report("read", done, size))
        )
    except PromptFileError as exc:
        raise CatalogError(str(exc)) from None
    loaded, parsed = load_model_spec(model)
    rows = iter_prompt_file(file, fmt)
    checked = iter_valid_pairs(
        TokenizerView.of(loaded), rows, lambda done: report("check", done, n_rows)
    )
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        try:
            for pair in checked:
                spool.write(json.dumps(dataclasses.asdict(pair), ensure_ascii=False) + "\n")
        except PromptValidationError as exc:
            raise CatalogError(f"{shown_name(file)}: {exc}") from None
        except PromptFileError as exc:  # the file changed since it was parsed
            raise CatalogError(str(exc)) from None
        except OSError as exc:
            raise CatalogError(
                f"cannot write the import's scratch file in {tempfile.gettempdir()} "
                f"({exc.strerror}); free some space there or set TMPDIR"
            ) from None
        spool.seek(0)
        pairs = (PairIn(**json.loads(line)) for line in spool)
        record = store.add_prompt_set(
            name,
            _reported(pairs, lambda done: report("store", done, n_rows)),
            f"import:{file.name}",
            parsed.spec,
            {"file": file.name},
        )
    return record


def _reported(pairs: Iterator[PairIn], progress: Callable[[int], None]) -> Iterator[PairIn]:
    done = 0
    for done, pair in enumerate(pairs, start=1):
        yield pair
        if done % IMPORT_REPORT_ROWS == 0:
            progress(done)
    progress(done)
