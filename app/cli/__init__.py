"""The ``headlab`` command line.

Each command group lives in its own module under ``app.cli`` and is mounted here. Commands that
report take ``--json`` and then print exactly one JSON object on stdout. Errors print a message
naming what is wrong and how to fix it on stderr and exit non-zero.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from app.cli.output import CliError, fail

# (module, attribute, group name): a typer app, or a function building one (dynamic commands),
# mounted as the group; with group None, a function that registers top-level commands.
COMMAND_GROUPS: tuple[tuple[str, str, str | None], ...] = (
    ("app.cli.db", "app", "db"),
    ("app.cli.runs", "app", "runs"),
    ("app.cli.serve", "register", None),
    ("app.cli.models", "app", "models"),
    ("app.cli.prompts", "app", "prompts"),
    ("app.cli.run", "build_group", "run"),
    ("app.cli.export", "app", "export"),
    ("app.cli.demo", "app", "demo"),
)


def build_cli() -> typer.Typer:
    root = typer.Typer(
        name="headlab",
        help="headlab: a workbench for attention heads.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for module_name, attr, group in COMMAND_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        target = getattr(module, attr)
        if group is None:
            target(root)
        else:
            root.add_typer(target if isinstance(target, typer.Typer) else target(), name=group)
    return root


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli = build_cli()
    try:
        cli(prog_name="headlab", standalone_mode=False)
    except CliError as exc:
        fail(str(exc), exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 — the CLI's last line of defence
        from click.exceptions import Abort, ClickException

        if isinstance(exc, ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, Abort):
            fail("aborted", 130)
        if type(exc).__module__.startswith(("storage", "analysis", "app")):
            fail(f"{type(exc).__name__}: {exc}", 1)
        raise
