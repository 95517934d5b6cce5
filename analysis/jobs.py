"""What a job gets and returns: one function per run kind (listed in ``analysis.job_table``),
called by the worker with a ``JobContext``.

A job reads its validated config and inputs from the context, reports progress through
``ctx.progress`` (which also raises ``Cancelled`` when the user cancelled the run), writes any
files into ``ctx.workdir`` and returns a ``RunOutput``. It never writes to the store itself:
the worker commits the output together with status FINISHED in one transaction, so a run that
dies half way leaves no partial results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from analysis.configs import RunConfigBase
from storage.errors import InvalidInput
from storage.records import HeadResultIn, PairRecord, RunOutput
from storage.uploads import is_upload_ref

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from storage.store import ResultStore

ConfigT = TypeVar("ConfigT", bound=RunConfigBase)


class Cancelled(Exception):
    """Raised inside a job when its run was cancelled; the worker records CANCELLED."""


class JobError(Exception):
    """A job cannot proceed because of its input; the message is shown to the user."""


@dataclass
class JobContext:
    run_id: int
    config: RunConfigBase
    store: ResultStore
    workdir: Path
    model_loader: Callable[[RunConfigBase], TransformerBridge]
    _on_progress: Callable[[float, str], bool] = field(repr=False, default=lambda f, m: False)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1]; raises ``Cancelled`` if the run was cancelled."""
        if self._on_progress(min(max(fraction, 0.0), 1.0), message):
            raise Cancelled(f"run {self.run_id} was cancelled")

    def config_as(self, cls: type[ConfigT]) -> ConfigT:
        """The run's config as its kind's class (a job registered for one kind reads its own)."""
        if not isinstance(self.config, cls):
            raise JobError(f"run {self.run_id}: expected a {cls.__name__}, got {self.config!r}")
        return self.config

    def stage(self, lo: float, hi: float) -> Callable[[float, str], None]:
        """A progress callback for one stage of the job: its [0, 1] mapped onto [lo, hi]."""
        return lambda f, msg: self.progress(lo + (hi - lo) * f, msg)

    def model(self) -> TransformerBridge:
        """The run's model, loaded once per worker and kept resident between jobs."""
        return self.model_loader(self.config)

    def local_file(self, value: str | None) -> str | None:
        """A config's file field as a local path: an upload reference (the web's only way to
        name a file) resolved and verified in the store's uploads, a plain path as given."""
        if value is None or not is_upload_ref(value):
            return value
        try:
            return str(self.store.uploads.resolve(value))
        except InvalidInput as exc:
            raise JobError(str(exc)) from None

    def pairs(self) -> list[PairRecord]:
        """The run's pairs. A set validated for another model is checked again against this
        run's model (same rules as an import: unknown characters, unequal lengths, answers
        that are not one token, the context) and refused with the problems it has there."""
        if self.config.prompt_set is None:
            raise JobError("this run kind needs a prompt set: pass --prompts NAME")
        prompt_set = self.store.get_prompt_set(self.config.prompt_set)
        pairs = self.store.get_pairs(prompt_set.id)
        if prompt_set.model_spec is not None and prompt_set.model_spec != self.config.model:
            self._revalidate(prompt_set.name, prompt_set.model_spec, pairs)
        return pairs

    def _revalidate(self, name: str, validated_for: str, pairs: list[PairRecord]) -> None:
        from analysis.prompts.validate import (
            PromptValidationError,
            TokenizerView,
            pairs_as_raw,
            validate_pairs,
        )

        try:
            validate_pairs(TokenizerView.of(self.model()), pairs_as_raw(list(pairs)))
        except (PromptValidationError, ValueError) as exc:
            first = str(exc).splitlines()
            shown = "; ".join(line.strip() for line in first[1:4]) or first[0]
            raise JobError(
                f"prompt set {name!r} was validated for {validated_for}, and on "
                f"{self.config.model} it has {first[0].split(' in ')[0]}: {shown}; generate or "
                f"import it for {self.config.model} (`headlab prompts generate/import "
                f"--model {self.config.model}`)"
            ) from None

    def task(self) -> str | None:
        """The generator task of the run's prompt set (None when it names none)."""
        if self.config.prompt_set is None:
            return None
        return self.store.get_prompt_set(self.config.prompt_set).task


def grid_rows(metric: str, grid: Any, **extra: Any) -> list[HeadResultIn]:
    """One aggregate row per head of a ``[layer, head]`` grid (``extra``: e.g. ``prompt=i``)."""
    return [
        HeadResultIn(metric, layer, head, float(grid[layer, head]), **extra)
        for layer in range(grid.shape[0])
        for head in range(grid.shape[1])
    ]


JobFn = Callable[[JobContext], RunOutput]
