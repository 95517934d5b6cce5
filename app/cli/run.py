"""``headlab run <kind>``: one command per registered run kind, options built from its config.

Each pydantic field of a kind's config becomes an option (``some_field`` → ``--some-field``):
Literal fields become choices, bools become ``--x/--no-x`` flags, lists repeat the option. An
option left out is left out of the config too, so the config's own default applies.
By default the run executes inline in this process (``--wait``) with a progress bar; with
``--no-wait`` it is only enqueued for a worker (``headlab worker`` or ``headlab serve``).
"""

from __future__ import annotations

import inspect
import threading
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import typer
from pydantic.fields import FieldInfo
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from analysis.configs import (
    ConfigError,
    RunConfigBase,
    parse_run_config,
    run_kinds,
    unwrap_optional,
)
from analysis.configs.catalog import CATALOG_KINDS
from analysis.provenance import code_version, package_versions
from app.cli.context import open_store, store_errors
from app.cli.output import CliError, emit_json
from app.cli.runs import run_details, run_summary
from storage.errors import Conflict
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
    data: dict[str, Any] = {"kind": kind, "model": values["model"]}
    if values.get("prompts") is not None:
        data["prompt_set"] = values["prompts"]
    for name in cls.model_fields:
        if name in BASE_FIELDS or values.get(name) is None:
            continue
        data[name] = _split_lists(values[name])
    try:
        return parse_run_config(data)
    except ConfigError as exc:
        raise CliError(f"invalid {kind} run: {exc}") from None


def enqueue(store: ResultStore, config: RunConfigBase) -> RunRecord:
    prompt_set_id = None
    if config.prompt_set is not None:
        prompt_set_id = store.get_prompt_set(config.prompt_set).id
    return store.enqueue_run(
        config.kind,
        config.model_dump(mode="json"),
        config.model,
        prompt_set_id,
        package_versions(),
        code_version(),
    )


def execute_inline(
    store: ResultStore, run: RunRecord, show_progress: bool, runner: Any = None
) -> RunRecord:
    """Run ``run`` in this process unless a worker has claimed it already; show progress; wait.

    Pass the same ``runner`` (an ``analysis.worker.Worker``) to keep its model loaded.
    """
    if runner is None:
        from analysis.worker import Worker

        runner = Worker(store)
    thread = None
    try:
        claimed: RunRecord | None = store.claim_run(run.id, runner.worker_id)
    except Conflict:  # a background worker took it first: follow it
        claimed = None
    if claimed is not None:
        thread = threading.Thread(target=runner.execute, args=(claimed,), daemon=True)
        thread.start()
    try:
        final = _watch(store, run.id, show_progress)
    except KeyboardInterrupt:
        store.request_cancel(run.id)
        raise CliError(f"run {run.id} cancelled by the user", 130) from None
    if thread is not None:
        thread.join()
    return store.get_run(final.id)


def _watch(store: ResultStore, run_id: int, show_progress: bool) -> RunRecord:
    columns = (
        TextColumn("run {task.fields[run_id]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% {task.description}"),
        TimeElapsedColumn(),
    )
    tick = threading.Event()
    with Progress(*columns, disable=not show_progress, transient=True) as bar:
        task = bar.add_task("queued", total=1.0, run_id=run_id)
        while True:
            run = store.get_run(run_id)
            bar.update(task, completed=run.progress, description=run.message or run.status.value)
            if run.status.is_terminal:
                return run
            tick.wait(0.2)


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
    for kind, cls in sorted(run_kinds().items()):
        if kind in CATALOG_KINDS:  # `headlab prompts …` and `headlab models add` cover these
            continue
        group.command(kind)(make_kind_command(kind, cls))
    return group
