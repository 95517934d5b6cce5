"""Every command of the CLI tree, misused: usage errors exit 2 with click's usage line, domain
errors exit 1 with one ``error:`` line, and nothing prints a traceback.

The commands run in-process through ``app.cli.main`` (the console script's entry point), so the
whole tree is covered in seconds; ``test_console_script_*`` runs the installed script once.
"""

from __future__ import annotations

import subprocess
import sys
import types
import typing

import pytest
import typer
from typer.main import get_command

from app.cli import build_cli, main


def _leaf_commands() -> list[tuple[tuple[str, ...], object]]:
    root = get_command(build_cli())
    out: list[tuple[tuple[str, ...], object]] = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                walk(sub, (*path, name))
        else:
            out.append((path, cmd))

    walk(root, ())
    return out


LEAVES = _leaf_commands()
IDS = [" ".join(path) for path, _ in LEAVES]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    captured = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err


def _wrong_value(param: object) -> str | None:
    """A value of the wrong type for an int, float or choice parameter, else None."""
    annotation = param.type_descriptor.annotation  # type: ignore[attr-defined]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) in (list, tuple):
        annotation = (typing.get_args(annotation) or (str,))[0]
    if annotation is int:
        return "x1"
    if annotation is float:
        return "x1.5"
    if typing.get_origin(annotation) is typing.Literal:
        return "no-such-choice"
    return None


def _typed_misuse(cmd: object) -> list[str] | None:
    """Arguments giving a wrongly typed value to the command's first int/float/choice param,
    with every other required parameter filled plausibly; None if it has no such parameter."""
    bad: list[str] | None = None
    fill: list[str] = []
    for p in getattr(cmd, "params", []):
        wrong = _wrong_value(p) if p.name != "help" else None
        is_option = p.opts[0].startswith("-")
        if bad is None and wrong is not None:
            bad = [p.opts[0], wrong] if is_option else [wrong]
        elif p.required:
            fill += [p.opts[0], "1"] if is_option else ["1"]
    return None if bad is None else bad + fill


def test_the_tree_is_walked():
    assert len(LEAVES) >= 25
    assert ("runs", "results") in [path for path, _ in LEAVES]
    assert ("run", "circuit") in [path for path, _ in LEAVES]
    assert len(TYPED) >= 15


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_unknown_option_is_a_usage_error(store, capsys, path, cmd):
    code, text = run_cli(capsys, *path, "--no-such-option")
    assert code == 2, text
    assert "Usage: headlab" in text and "No such option" in text
    assert "Traceback" not in text


# commands whose parameters are all text or flags have nothing to mistype
TYPED = [(path, args) for path, cmd in LEAVES if (args := _typed_misuse(cmd)) is not None]


@pytest.mark.parametrize(("path", "args"), TYPED, ids=[" ".join(p) for p, _ in TYPED])
def test_wrongly_typed_argument_is_a_usage_error(store, capsys, path, args):
    code, text = run_cli(capsys, *path, *args)
    assert code == 2, text
    assert "Usage: headlab" in text and "Invalid value" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("nosuch",), "No such command 'nosuch'"),
        (("runs", "show", "abc"), "Invalid value for 'RUN'"),
        (("run", "sae-train", "--layer", "1"), "Possible options: --layers"),
        (("run", "circuit", "--model", "zoo:induction-2l", "--method", "foo"), "'foo'"),
        (("run", "heads", "--model", "zoo:induction-2l", "--device", "tpu"), "'tpu'"),
        (("prompts", "generate", "induction", "--model", "zoo:induction-2l", "--n", "-5"), "1"),
        (("serve", "--port", "99999"), "65535"),
        (("runs", "list", "--limit", "-1"), "--limit"),
        (("run", "heads", "--prompts", "x"), "Missing option '--model'"),
    ],
)
def test_the_issue_examples(store, capsys, args, needle):
    code, text = run_cli(capsys, *args)
    assert code == 2, text
    assert needle in text and "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("runs", "show", "999"), "error: run 999 does not exist"),
        (("runs", "results", "999"), "error: run 999 does not exist"),
        (("prompts", "show", "nope"), "error: "),
        (("export", "figure", "999", "--kind", "heatmap", "--out", "x.svg"), "error: "),
    ],
)
def test_domain_errors_are_one_line(store, capsys, args, needle):
    code, text = run_cli(capsys, *args)
    assert code == 1, text
    assert needle in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1


def test_models_list_shows_the_zoo_in_a_fresh_home(store, capsys):
    code, text = run_cli(capsys, "models", "list", "--json")
    assert code == 0
    import json

    models = json.loads(text)["models"]
    assert {m["spec"] for m in models} >= {"zoo:induction-2l", "zoo:greater-than-3l"}
    assert all(m["builtin"] and not m["registered"] for m in models)
    assert models[0]["facts"]["n_layers"] >= 2


def test_console_script_usage_error_has_no_traceback(store, headlab_env):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "runs", "show", "abc"],
        env=headlab_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Usage: headlab runs show" in result.stderr and "Traceback" not in result.stderr


def test_typer_exception_types_are_public():
    # main() catches typer's public exception types; a typer that moves them breaks loudly here
    assert issubclass(typer.BadParameter, typer.TyperException)
