"""Configs of the catalog run kinds: runs that add a prompt set or a model to the store. Torch-free.

Checking prompts against a tokenizer, generating task prompts and loading a model all need the
model, so the web app cannot do them (it never imports torch); it enqueues one of these runs and
a worker does the work, committing the new prompt set / model with the run (one transaction).

- ``prompts-import``: the text of a CSV / JSONL prompt file (``analysis.prompts.files`` format),
  checked row by row against the model's tokenizer (``analysis.prompts.validate``) and stored as
  prompt set ``name``. The text travels inside the run config, so it is capped at
  ``MAX_IMPORT_BYTES``; bigger files go through ``headlab prompts import``.
- ``prompts-generate``: ``n`` seeded pairs of a task (``analysis.prompts.generators``) that are
  valid for the model, stored as prompt set ``name`` (default ``<task>-<model>-<n>-s<seed>``).
- ``model-add``: load the model of the base ``model`` spec, measure its architecture facts and
  register it as ``name`` (default: from the spec, as ``headlab models add`` does).

Row errors: a failed import's error text is a summary line, then ONE LINE PER PROBLEM starting
``row N: `` (``row_error_text``); ``parse_row_errors`` reads them back for the web page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from analysis.configs.base import RunConfigBase
from analysis.model_specs import parse_model_spec

CATALOG_KINDS = ("prompts-import", "prompts-generate", "model-add")
TASKS = ("induction", "induction-contrast", "ioi", "greater-than", "needle")
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_GENERATED = 100_000
NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
ROW_LINE = re.compile(r"^row (\d+)(?: \(line \d+\))?: (.*)$")
MAX_ERROR_LINES = 500
NAME_HELP = "use 1–128 letters, digits, '.', '_', '-' or '/', starting with a letter or digit"


def check_name(name: str | None) -> str | None:
    if name is not None and not NAME_RULE.match(name):
        raise ValueError(f"{name!r} is not a valid name: {NAME_HELP}")
    return name


def model_tail(spec: str) -> str:
    """The last part of a spec's target: zoo:induction-2l → induction-2l, hf:a/b → b."""
    return spec.split(":", 1)[-1].rstrip("/").split("/")[-1]


def default_set_name(task: str, model: str, n: int, seed: int) -> str:
    """The name ``headlab prompts generate`` gives a generated set."""
    return f"{task}-{model_tail(model)}-{n}-s{seed}"


def default_model_name(spec: str) -> str:
    """zoo:<name> → <name>; hf:<owner/name> → <owner/name>; hf:<folder> → the folder's name."""
    parsed = parse_model_spec(spec)
    if parsed.kind == "zoo" or not parsed.is_local:
        return parsed.target
    return Path(parsed.target).name


def row_error_text(what: str, problems: list[str], n_rows: int) -> str:
    """``what: K problem(s) in N row(s); nothing was stored`` then one problem per line."""
    shown = problems[:MAX_ERROR_LINES]
    lines = [f"{what}: {len(problems)} problem(s) in {n_rows} row(s); nothing was stored"]
    lines += shown
    if len(problems) > len(shown):
        lines.append(f"… and {len(problems) - len(shown)} more")
    return "\n".join(lines)


def parse_row_errors(text: str) -> list[tuple[int, str]]:
    """(row, message) for every ``row N: message`` line of an error text."""
    found = []
    for line in text.splitlines():
        match = ROW_LINE.match(line.strip())
        if match:
            found.append((int(match.group(1)), match.group(2)))
    return found


class _CatalogConfig(RunConfigBase):
    @field_validator("prompt_set")
    @classmethod
    def _no_input_set(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("catalog runs read no prompt set; name the new one with `name`")
        return value


class PromptsImportConfig(_CatalogConfig):
    """Check a prompt file against the model's tokenizer and store it as a prompt set."""

    kind: Literal["prompts-import"] = "prompts-import"
    name: str = Field(description="Name of the new prompt set.")
    content: str = Field(description="The prompt file's text (CSV with a header, or JSONL).")
    format: Literal["csv", "jsonl"] = Field(default="csv", description="csv or jsonl")
    filename: str = Field(default="", description="The uploaded file's name (kept as source).")

    _name = field_validator("name")(check_name)

    @field_validator("content")
    @classmethod
    def _size_limit(cls, content: str) -> str:
        size = len(content.encode("utf-8"))
        if size > MAX_IMPORT_BYTES:
            raise ValueError(
                f"the file is {size / 2**20:.1f} MB; imports through the web take up to "
                f"{MAX_IMPORT_BYTES // 2**20} MB — import bigger files with "
                "`headlab prompts import FILE --name NAME --model SPEC`"
            )
        if not content.strip():
            raise ValueError("the file is empty; it needs at least one pair")
        return content


# The generator tasks (``analysis.prompts.generators.GENERATORS`` has one function each; a test
# checks both name the same tasks): the zoo's character tasks, the word tasks, needles, code tasks.
PromptTask = Literal[
    "induction",
    "induction-contrast",
    "ioi",
    "greater-than",
    "needle",
    "identifier-induction",
    "bracket-match",
    "attribute-recall",
]
PROMPT_TASKS: tuple[str, ...] = get_args(PromptTask)


class PromptsGenerateConfig(_CatalogConfig):
    """Generate a seeded task prompt set that is valid for the model's tokenizer."""

    kind: Literal["prompts-generate"] = "prompts-generate"
    task: PromptTask = Field(default="induction", description="Task to generate pairs for.")
    n: int = Field(default=20, ge=1, le=MAX_GENERATED, description="Number of pairs.")
    name: str | None = Field(
        default=None, description="Name of the new set (default <task>-<model>-<n>-s<seed>)."
    )
    needle_length: int = Field(
        default=6, ge=2, le=64, description="needle task: units in the needle"
    )
    needle_query: int = Field(
        default=2, ge=1, le=63, description="needle task: needle units repeated as the query"
    )
    contexts: list[int] = Field(
        default=[], description="needle task: context lengths in tokens (empty: four up to n_ctx)"
    )
    depths: list[float] = Field(
        default=[], description="needle task: needle depths in [0, 1] (empty: 0, .25, .5, .75, 1)"
    )

    _name = field_validator("name")(check_name)

    @model_validator(mode="after")
    def _needle_options_for_needle_only(self) -> PromptsGenerateConfig:
        custom = (self.needle_length, self.needle_query, self.contexts, self.depths) != (
            6,
            2,
            [],
            [],
        )
        if custom and self.task != "needle":
            raise ValueError(
                "needle_length, needle_query, contexts and depths apply to the needle task only"
            )
        return self

    @property
    def set_name(self) -> str:
        return self.name or default_set_name(self.task, self.model, self.n, self.seed)

    @property
    def needle_options(self) -> dict[str, Any] | None:
        """Keyword arguments of ``analysis.prompts.needle.NeedleOptions`` (needle task only)."""
        if self.task != "needle":
            return None
        return {"needle_length": self.needle_length, "query": self.needle_query,
                "contexts": tuple(self.contexts), "depths": tuple(self.depths)}  # fmt: skip


class ModelAddConfig(_CatalogConfig):
    """Load a model to check it, measure its architecture facts and register it."""

    kind: Literal["model-add"] = "model-add"
    name: str | None = Field(
        default=None, description="Name to register it under (default: from the spec)."
    )
    replace: bool = Field(default=False, description="Replace a model of the same name.")

    _name = field_validator("name")(check_name)

    @property
    def model_name(self) -> str:
        return self.name or default_model_name(self.model)
