"""Hook names are built only in ``analysis/hooks.py``: no other analysis module spells one.

The scan reads every string constant and f-string part of the code with ``ast`` (docstrings
excluded) and flags text that looks like a TransformerLens hook name (``hook_z``,
``blocks.3.attn.hook_pattern``, ``blocks.{L}.hook_mlp_out``…).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# a block hook (``blocks.…``, ``….hook_…``) or a model-level one (``hook_embed``…); bare words
# such as sae-lens' ``hook_name`` key or ``reshape_activations="hook_z"`` are not hook names
HOOK_NAME = re.compile(r"^blocks\.|\.hook_[a-z]|^hook_(embed|pos_embed|tokens)$")


def docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def hook_literals(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line text`` of every hook-name-like string in the code of ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = docstring_nodes(tree)
    hits = []
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and id(node) not in skip and HOOK_NAME.search(text):
            hits.append(f"{path.relative_to(root)}:{node.lineno} {text!r}")
    return hits


def test_no_analysis_module_but_hooks_spells_a_hook_name():
    modules = sorted(p for p in (ROOT / "analysis").rglob("*.py") if p.name != "hooks.py")
    assert [hit for path in modules for hit in hook_literals(path)] == []


def test_the_scan_finds_planted_names_and_skips_docstrings(tmp_path):
    module = tmp_path / "planted.py"
    module.write_text(
        '"""Reads ``blocks.0.attn.hook_z`` (a docstring: fine)."""\n'
        "def f(layer):\n"
        '    """hook_pattern, in a docstring."""\n'
        '    a = f"blocks.{layer}.attn.hook_z"\n'
        '    return a, "hook_embed", "ln_final.hook_scale", "hook_name", "blocksize"\n'
    )
    hits = [h.split(" ")[0] for h in hook_literals(module, tmp_path)]
    assert sorted(hits) == ["planted.py:4"] * 2 + ["planted.py:5"] * 2  # f-string: both parts
