"""The ``headlab`` CLI run in the test's own process: its exit code, stdout and stderr."""

from __future__ import annotations

import pytest

from app.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as ended:
        code = ended.code if isinstance(ended.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
