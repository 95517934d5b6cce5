"""``headlab run <kind>``: one command per registered run kind, options built from its config.

Each pydantic field of a kind's config becomes an option (``some_field`` → ``--some-field``):
Literal fields become choices, bools become ``--x/--no-x`` flags, lists repeat the option.
By default the run executes inline in this process (``--wait``) with a progress bar; with
``--no-wait`` it is only enqueued for a worker (``headlab worker`` or ``headlab serve``).
"""

from __future__ import annotations

import threading
import types
import typing
from typing import Any, Literal

import click
from pydantic.fields import FieldInfo
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from analysis.configs import ConfigError, RunConfigBase, parse_run_config, run_kinds
from analysis.provenance import code_version, package_versions
from app.cli.context import open_store, store_errors
from app.cli.output import CliError, emit_json
from app.cli.runs import run_details, run_summary
from storage.records import RunRecord, RunStatus
from storage.store import ResultStore

BASE_FIELDS = {"kind", "model", "prompt_set"}


def _unwrap_optional(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else str
    return annotation


def field_option(name: str, info: FieldInfo) -> click.Option:
    annotation = _unwrap_optional(info.annotation)
    flag = "--" + name.replace("_", "-")
    default = None if info.is_required() else info.default
    help_text = info.description or ""
    if annotation is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", name], default=default, help=help_text)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = [str(c) for c in typing.get_args(annotation)]
        return click.Option(
            [flag, name], type=click.Choice(choices), default=default, help=help_text
        )
    if origin in (list, tuple):
        inner = (typing.get_args(annotation) or (str,))[0]
        click_type = inner if inner in (int, float, str) else str
        return click.Option(
            [flag, name], type=click_type, multiple=True, default=default or (), help=help_text
        )
    click_type = annotation if annotation in (int, float, str) else str
    return click.Option(
        [flag, name], type=click_type, default=default, required=False, help=help_text
    )


def _coerce(value: Any, info: FieldInfo) -> Any:
    if isinstance(value, tuple):
        return list(value)
    annotation = _unwrap_optional(info.annotation)
    if typing.get_origin(annotation) is Literal and value is not None:
        for choice in typing.get_args(annotation):
            if str(choice) == value:
                return choice
    return value


def build_config(kind: str, cls: type[RunConfigBase], params: dict[str, Any]) -> RunConfigBase:
    data: dict[str, Any] = {"kind": kind, "model": params["model"]}
    if params.get("prompts") is not None:
        data["prompt_set"] = params["prompts"]
    for name, info in cls.model_fields.items():
        if name in BASE_FIELDS or params.get(name) is None:
            continue
        data[name] = _coerce(params[name], info)
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


def execute_inline(store: ResultStore, run: RunRecord, show_progress: bool) -> RunRecord:
    """Run ``run`` in this process if no worker has claimed it yet; show progress; wait."""
    from analysis.worker import Worker

    runner = Worker(store)
    claimed = store.claim_run(run.id, runner.worker_id)
    thread = None
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
    with Progress(*columns, disable=not show_progress, transient=True) as bar:
        task = bar.add_task("queued", total=1.0, run_id=run_id)
        stop = threading.Event()
        while True:
            run = store.get_run(run_id)
            bar.update(task, completed=run.progress, description=run.message or run.status.value)
            if run.status.is_terminal:
                return run
            stop.wait(0.2)


def make_kind_command(kind: str, cls: type[RunConfigBase]) -> click.Command:
    options: list[click.Parameter] = [
        click.Option(["--model", "model"], required=True, help="Model spec, e.g. zoo:induction-2l"),
        click.Option(["--prompts", "prompts"], default=None, help="Name of a stored prompt set."),
    ]
    options += [
        field_option(name, info)
        for name, info in cls.model_fields.items()
        if name not in BASE_FIELDS
    ]
    options += [
        click.Option(["--wait/--no-wait", "wait"], default=True, help="Run inline and wait."),
        click.Option(["--json", "json_out"], is_flag=True, help="Print one JSON object."),
    ]

    def callback(**params: Any) -> None:
        config = build_config(kind, cls, params)
        store = open_store()
        with store_errors():
            run = enqueue(store, config)
            if not params["wait"]:
                report(store, run, params["json_out"], details=False)
                return
            final = execute_inline(store, run, show_progress=not params["json_out"])
            report(store, final, params["json_out"], details=True)
        if final.status is not RunStatus.FINISHED:
            raise CliError(f"run {final.id} {final.status.value}: {final.error or ''}".strip())

    doc = (cls.__doc__ or f"Run a {kind} analysis.").strip().splitlines()[0]
    return click.Command(kind, params=options, callback=callback, help=doc)


def report(store: ResultStore, run: RunRecord, json_out: bool, *, details: bool) -> None:
    if json_out:
        emit_json(run_details(store, run, all_rows=False) if details else run_summary(run))
    elif run.status is RunStatus.QUEUED:
        click.echo(f"run {run.id} queued ({run.kind}); follow it with `headlab runs show {run.id}`")
    else:
        click.echo(f"run {run.id} {run.status.value} ({run.kind}) — `headlab runs show {run.id}`")


def build_group() -> click.Group:
    group = click.Group("run", help="Run an analysis (one command per run kind).")
    for kind, cls in sorted(run_kinds().items()):
        group.add_command(make_kind_command(kind, cls))
    return group
