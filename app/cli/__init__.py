"""The ``headlab`` command line.

Each command group lives in its own module under ``app.cli`` and is mounted here. Commands that
report take ``--json`` and then print exactly one JSON object on stdout.

Errors never show a traceback:

- a usage error (unknown option or command, wrong type, missing argument) prints the usage line
  and the message, exit code 2;
- a domain error prints one ``error: …`` line naming the problem and the fix, exit code 1
  (3: a name is taken, 4: the database schema is out of date, 130: interrupted).
"""

from __future__ import annotations

import logging
import sys

import typer

from app.cli import compare, db, demo, export, models, prompts, run, runs, serve, sweep
from app.cli.output import CliError, fail

EXIT_INTERRUPTED = 130


def build_cli() -> typer.Typer:
    root = typer.Typer(
        name="headlab",
        help="headlab: a workbench for attention heads.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    root.add_typer(db.app, name="db")
    root.add_typer(runs.app, name="runs")
    serve.register(root)
    root.add_typer(models.app, name="models")
    root.add_typer(prompts.app, name="prompts")
    root.add_typer(run.build_group(), name="run")
    root.add_typer(sweep.app, name="sweep")
    root.add_typer(export.app, name="export")
    root.add_typer(compare.app, name="compare")
    root.add_typer(demo.app, name="demo")
    return root


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); always ends in ``sys.exit``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli = build_cli()
    try:
        cli(args=argv, prog_name="headlab", standalone_mode=False)
    except CliError as exc:
        fail(str(exc), exc.exit_code)
    except typer.TyperException as exc:  # usage errors of typer's own click
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt, EOFError):
        fail("aborted", EXIT_INTERRUPTED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # a full disk, a closed pipe, an unreadable file
        fail(f"{exc.strerror or exc} ({exc.filename or 'I/O'}); check the path and free space", 1)
    except Exception as exc:  # noqa: BLE001 — the CLI's last line of defence
        if type(exc).__module__.startswith(("storage", "analysis", "app")):
            fail(f"{exc}", 1)
        raise
    sys.exit(0)
