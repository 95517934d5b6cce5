"""``headlab run <kind>``: one command per registered run kind, options built from its config.

Each pydantic field of a kind's config becomes an option (``some_field`` → ``--some-field``):
Literal fields become choices, bools become ``--x/--no-x`` flags, lists repeat the option. An
option left out is left out of the config too, so the config's own default applies.
By default the run executes inline in this process (``--wait``) with a progress bar; with
``--no-wait`` it is only enqueued for a worker (``headlab worker`` or ``headlab serve``).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import typer
from pydantic.fields import FieldInfo
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from analysis.configs import ConfigError, RunConfigBase, run_kinds, unwrap_optional
from app import launching
from app.cli.context import open_store, store_errors
from app.cli.output import CliError, emit_json
from app.cli.runs import run_details, run_summary
from app.launching import LaunchRefused, Watcher, enqueue_config, make_config, poll_until_done
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

BASE_FIELDS = {"kind", "model", "prompt_set"}
KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _option_type(annotation: Any) -> Any:
    """The annotation typer sees: scalars, Literal choices and bools pass through; lists repeat."""
    annotation = unwrap_optional(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin is Literal or annotation in (int, float, str, bool):
        return annotation | None
    if origin in (list, tuple):
        inner = (typing.get_args(annotation) or (str,))[0]
        return types.GenericAlias(list, (inner if inner in (int, float, str) else str,)) | None
    return str | None


def _option(name: str, annotation: Any, default: Any, *decls: str, help: str) -> inspect.Parameter:
    return inspect.Parameter(
        name, KEYWORD, annotation=annotation, default=typer.Option(default, *decls, help=help)
    )


def field_parameter(name: str, info: FieldInfo) -> inspect.Parameter:
    flag = "--" + name.replace("_", "-")
    is_bool = unwrap_optional(info.annotation)[0] is bool
    decls = [f"{flag}/--no-{flag[2:]}"] if is_bool else [flag]
    default = None if info.is_required() else info.default
    text = info.description or ""
    if default is not None and not isinstance(default, list | tuple):
        text += f" (default {default})"
    return _option(name, _option_type(info.annotation), None, *decls, help=text)


def _split_lists(value: Any) -> Any:
    """List options may repeat and/or hold comma-separated items: ``--sites z,q --sites k``."""
    if not isinstance(value, list | tuple):
        return value
    items: list[Any] = []
    for item in value:
        items += (
            [p.strip() for p in item.split(",") if p.strip()] if isinstance(item, str) else [item]
        )
    return items


def build_config(kind: str, cls: type[RunConfigBase], values: dict[str, Any]) -> RunConfigBase:
    options = {
        name: _split_lists(values[name])
        for name in cls.model_fields
        if name not in BASE_FIELDS and values.get(name) is not None
    }
    try:
        return make_config(kind, values["model"], values.get("prompts"), options)
    except ConfigError as exc:
        raise CliError(f"invalid {kind} run: {exc}") from None


def enqueue(store: ResultStore, config: RunConfigBase) -> RunRecord:
    try:
        return enqueue_config(store, config)
    except LaunchRefused as exc:
        raise CliError(f"invalid {config.kind} run: {exc}") from None


def execute_inline(
    store: ResultStore, run: RunRecord, show_progress: bool, runner: Any = None
) -> RunRecord:
    """Run ``run`` inline with a rich progress bar (see ``app.launching.execute_inline``)."""
    try:
        return launching.execute_inline(store, run, _rich_watcher(show_progress), runner)
    except KeyboardInterrupt:
        raise CliError(f"run {run.id} cancelled by the user", 130) from None


def _rich_watcher(show_progress: bool) -> Watcher:
    columns = (
        TextColumn("run {task.fields[run_id]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% {task.description}"),
        TimeElapsedColumn(),
    )

    def watch(store: ResultStore, run_id: int) -> RunRecord:
        with Progress(*columns, disable=not show_progress, transient=True) as bar:
            task = bar.add_task("queued", total=1.0, run_id=run_id)
            return poll_until_done(
                store,
                run_id,
                lambda run: bar.update(
                    task, completed=run.progress, description=run.message or run.status.value
                ),
            )

    return watch


def _common_parameters() -> tuple[list[inspect.Parameter], list[inspect.Parameter]]:
    head = [
        _option("model", str, ..., "--model", help="Model spec, e.g. zoo:induction-2l"),
        _option("prompts", str | None, None, "--prompts", help="Name of a stored prompt set."),
    ]
    tail = [
        _option("wait", bool, True, "--wait/--no-wait", help="Run inline and wait."),
        _option("json_out", bool, False, "--json", help="Print one JSON object."),
    ]
    return head, tail


def make_kind_command(kind: str, cls: type[RunConfigBase]) -> Callable[..., None]:
    head, tail = _common_parameters()
    fields = [field_parameter(n, i) for n, i in cls.model_fields.items() if n not in BASE_FIELDS]

    def command(**values: Any) -> None:
        config = build_config(kind, cls, values)
        store = open_store()
        with store_errors():
            run = enqueue(store, config)
            if not values["wait"]:
                report(store, run, values["json_out"], details=False)
                return
            final = execute_inline(store, run, show_progress=not values["json_out"])
            report(store, final, values["json_out"], details=True)
        if final.status is not RunStatus.FINISHED:
            raise CliError(f"run {final.id} {final.status.value}: {final.error or ''}".strip())

    command.__signature__ = inspect.Signature(head + fields + tail)  # type: ignore[attr-defined]
    command.__doc__ = (cls.__doc__ or f"Run a {kind} analysis.").strip()
    command.__name__ = kind.replace("-", "_")
    return command


def report(store: ResultStore, run: RunRecord, json_out: bool, *, details: bool) -> None:
    if json_out:
        emit_json(run_details(store, run, all_rows=False) if details else run_summary(run))
    elif run.status is RunStatus.QUEUED:
        typer.echo(f"run {run.id} queued ({run.kind}); follow it with `headlab runs show {run.id}`")
    else:
        typer.echo(f"run {run.id} {run.status.value} ({run.kind}): `headlab runs show {run.id}`")


def build_group() -> typer.Typer:
    group = typer.Typer(help="Run an analysis (one command per run kind).", no_args_is_help=True)
    kinds = run_kinds()
    for kind in launching.analysis_kinds():  # `prompts …` and `models add` cover catalog kinds
        group.command(kind)(make_kind_command(kind, kinds[kind]))
    return group
