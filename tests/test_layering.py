"""The package layering, read from the source: ``storage`` ← ``analysis`` ← ``app``.

Every import statement counts, function-local ones too, so a lazy import cannot break the
layering unseen. (The web app's import staying torch-free is tests/app/test_web_torchfree.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"storage": {"analysis", "app"}, "analysis": {"app"}}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


def layering_violations(package: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, top in sorted(imported_packages(path))
        if top in FORBIDDEN[package]
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_import_nothing_above_them(package):
    assert layering_violations(package) == []


def test_the_scan_sees_function_local_imports(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from app.services import figures\n    import app.web\n")
    assert imported_packages(module) == {(2, "app"), (3, "app")}
