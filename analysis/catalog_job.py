"""Jobs of the catalog run kinds (see ``analysis.configs.catalog``): import or generate a prompt
set, register a model. They run in a worker because they need the model and its tokenizer.

Each job returns the new prompt set / model inside its ``RunOutput``; the worker commits it with
status FINISHED in one transaction, so a failed or cancelled run adds nothing, and a name taken
meanwhile fails the run (``Conflict``) without touching what is stored.

Token-level problems of an import are reported in the run's error text, ONE LINE PER PROBLEM,
each line starting ``row N: `` (1-based data row of the file) — ``parse_row_errors`` reads them
back (``analysis.configs.catalog``, torch-free), so the web page shows each next to its row.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from analysis.configs.catalog import (
    ModelAddConfig,
    PromptsGenerateConfig,
    PromptsImportConfig,
    row_error_text,
)
from analysis.jobs import JobContext, JobError
from analysis.model_specs import parse_model_spec
from storage.errors import NotFound
from storage.records import ModelIn, PromptSetIn, RunOutput

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


def _model(ctx: JobContext) -> TransformerBridge:
    from analysis.models import ModelLoadError, ModelSpecError

    ctx.progress(0.1, f"loading {ctx.config.model}")
    try:
        return ctx.model()
    except (ModelSpecError, ModelLoadError) as exc:
        raise JobError(str(exc)) from None


def _require_new_set(ctx: JobContext, name: str) -> None:
    try:
        ctx.store.get_prompt_set(name)
    except NotFound:
        return
    raise JobError(
        f"a prompt set named {name!r} already exists; choose another name or delete it first "
        f"(`headlab prompts delete {name}`)"
    )


def _upload_path(ctx: JobContext, cfg: PromptsImportConfig) -> Path:
    name = Path(cfg.filename).name
    if name in ("", ".", ".."):
        name = f"prompts.{cfg.format}"
    path = ctx.workdir / name
    path.write_text(cfg.content, encoding="utf-8")
    return path


def prompts_import_job(ctx: JobContext) -> RunOutput:
    from analysis.prompts.files import PromptFileError, read_prompt_file
    from analysis.prompts.validate import PromptValidationError, TokenizerView, validate_pairs

    cfg = ctx.config
    assert isinstance(cfg, PromptsImportConfig)
    _require_new_set(ctx, cfg.name)
    path = _upload_path(ctx, cfg)
    try:
        raws = read_prompt_file(path, cfg.format)
    except PromptFileError as exc:
        raise JobError(str(exc)) from None
    model = _model(ctx)
    ctx.progress(0.4, f"checking {len(raws)} pairs against the tokenizer")
    try:
        pairs = validate_pairs(TokenizerView.of(model), raws)
    except PromptValidationError as exc:
        raise JobError(row_error_text(path.name, exc.problems, len(raws))) from None
    except ValueError as exc:  # the model has no tokenizer
        raise JobError(f"{cfg.model}: {exc}") from None
    spec = parse_model_spec(cfg.model).spec
    summary = {"prompt_set": cfg.name, "n_pairs": len(pairs), "model": spec, "file": path.name}
    new_set = PromptSetIn(cfg.name, pairs, f"import:{path.name}", spec, {"file": path.name})
    return RunOutput(summary=summary, prompt_set=new_set)


def prompts_generate_job(ctx: JobContext) -> RunOutput:
    from analysis.prompts.generators import GeneratorError, generate_pairs
    from analysis.prompts.needle import needle_options

    cfg = ctx.config
    assert isinstance(cfg, PromptsGenerateConfig)
    name = cfg.set_name
    _require_new_set(ctx, name)
    model = _model(ctx)
    ctx.progress(0.4, f"generating {cfg.n} {cfg.task} pairs")
    try:
        options = needle_options(cfg.needle_options) if cfg.needle_options else None
        pairs = generate_pairs(model, cfg.task, cfg.n, cfg.seed, options)
    except (GeneratorError, ValueError) as exc:
        raise JobError(f"{cfg.task} on {cfg.model}: {exc}") from None
    spec = parse_model_spec(cfg.model).spec
    meta = {"task": cfg.task, "seed": cfg.seed}
    summary = {"prompt_set": name, "n_pairs": len(pairs), "model": spec, **meta}
    new_set = PromptSetIn(name, pairs, f"generate:{cfg.task}", spec, meta)
    return RunOutput(summary=summary, prompt_set=new_set)


def model_add_job(ctx: JobContext) -> RunOutput:
    from analysis.models import model_facts

    cfg = ctx.config
    assert isinstance(cfg, ModelAddConfig)
    name = cfg.model_name
    if not cfg.replace:
        try:
            ctx.store.get_model(name)
        except NotFound:
            pass
        else:
            raise JobError(
                f"a model named {name!r} already exists; choose another name or tick replace"
            )
    model = _model(ctx)
    ctx.progress(0.8, "measuring architecture facts")
    facts = model_facts(model)
    spec = parse_model_spec(cfg.model).spec
    summary = {"model": name, "spec": spec, "facts": facts}
    return RunOutput(summary=summary, model=ModelIn(name, spec, facts, cfg.replace))
