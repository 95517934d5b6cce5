"""Running the real ``headlab`` command in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

HEADLAB = [sys.executable, "-m", "app.cli"]


def headlab(
    *args: str, env: dict[str, str], check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*HEADLAB, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"headlab {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def headlab_json(*args: str, env: dict[str, str]) -> Any:
    result = headlab(*args, "--json", env=env)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line, got:\n{result.stdout}"
    return json.loads(lines[0])
