"""The quickstart notebook, run on a real Jupyter kernel (nbclient), asserted on its outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "quickstart.ipynb"

pytestmark = pytest.mark.slow


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_quickstart_runs_on_a_real_kernel(tmp_path, monkeypatch):
    monkeypatch.delenv("HEADLAB_DB", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not any(o.output_type == "error" for o in c.outputs) for c in cells)
    outputs = [_text(c) for c in cells]
    assert "induction-2l" in outputs[1]
    assert "best induction head: (1," in outputs[2]  # layer 1 of the zoo model (MECHANISM.md)
    assert "best previous-token head: (0," in outputs[2]
    assert "patching effect of the best induction head:" in outputs[4]
    assert "in circuit:" in outputs[5] and "faithfulness:" in outputs[5]
    assert "wrote induction_heads.svg True" in outputs[6]
    assert (tmp_path / "headlab-data" / "headlab.db").exists()
    assert (tmp_path / "induction_heads.svg").stat().st_size > 1000


def test_readme_shows_the_notebooks_first_cell():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    first = next(c for c in notebook.cells if c.cell_type == "code").source
    readme = (NOTEBOOK.parents[2] / "README.md").read_text()
    assert f"```python\n{first}\n```" in readme
