"""What produced a run: package versions and the code version. Torch-free (reads metadata only)."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "headlab",
    "torch",
    "transformer-lens",
    "sae-lens",
    "transformers",
    "dash",
    "plotly",
    "kaleido",
    "sqlalchemy",
    "pandas",
    "numpy",
)

_REPO_ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe`` of the checkout (with ``-dirty``), else the installed headlab version."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=_REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        described = out.stdout.strip()
        if described:
            return f"git:{described}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"headlab=={metadata.version('headlab')}"
    except metadata.PackageNotFoundError:
        return "unknown"
