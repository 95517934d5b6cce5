"""The one figure registry: every declared kind builds from stored data, the pages, the CLI and
bundles read the same table, and a wrong request names what is wrong."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from app.export.errors import ExportError
from app.services.figures import (
    EXPORT_KINDS,
    FIGURES,
    KINDS,
    FigureRequest,
    build_figure,
    bundle_specs,
    export_spec,
    run_figure,
)
from app.services.results import ResultsReader
from tests.browser.seeding import seed_all, seed_sweep

from .test_explore_web import EXPLORE_KINDS
from .test_importance_figures import FIGURES as IMPORTANCE_KINDS
from .test_lens_figures import LENS_KINDS
from .test_taxonomy_figures import TAXONOMY_KINDS


@pytest.fixture
def seeded(store, tmp_path):
    seeded = seed_all(store, tmp_path / "seed")
    seeded.sweep = seed_sweep(store)
    return seeded, ResultsReader(store)


def _sweep_runs(reader: ResultsReader, sweep: int) -> list[int]:
    return [r.id for r in reader.store.sweep_runs(sweep)]


def _one_spec_per_kind(s, reader: ResultsReader) -> dict[str, dict]:
    feature = 0
    return {
        "head_heatmap": {"run": s.heads, "metric": "induction_score"},
        "position_heatmap": {"run": s.patch, "metric": "patch_z", "layer": 1, "head": 2},
        "pattern": {"run": s.heads, "layer": 1, "head": 2, "prompt": 0},
        "circuit_graph": {"run": s.circuits[0], "top_k": 5},
        "faithfulness": {"runs": s.circuits},
        "roc": {"runs": s.circuits},
        "sae_training": {"run": s.sae},
        "sae_shares": {"run": s.sae, "feature": feature},
        "sae_contexts": {"run": s.sae, "feature": feature},
        "sae_dfa": {"run": s.sae, "feature": feature},
        "compare_side": {"a": s.heads, "b": s.compare, "metric": "induction_score"},
        "compare_diff": {"a": s.heads, "b": s.compare, "metric": "induction_score"},
        "compare_movers": {"a": s.heads, "b": s.compare, "metric": "induction_score"},
        "compare_sweep": {
            "sweep": s.sweep,
            "runs": _sweep_runs(reader, s.sweep),
            "metric": "induction_score",
        },
        "circuit_overlap": {"runs": s.circuits},
        "overlap_matrix": {"runs": s.circuits, "level": "nodes"},
    }


def test_every_declared_kind_builds_from_the_store(seeded):
    s, reader = seeded
    specs = _one_spec_per_kind(s, reader)
    # the taxonomy, importance and lens kinds need a real run: test_taxonomy_figures.py,
    # test_importance_figures.py and test_lens_figures.py build each
    built_elsewhere = set(TAXONOMY_KINDS) | set(IMPORTANCE_KINDS) | set(LENS_KINDS)
    built_elsewhere |= set(EXPLORE_KINDS)  # test_explore_web.py, on a real explore run
    built_elsewhere |= {"path_grid"}  # test_path_patch.py, on a real path-patch run
    assert set(specs) | built_elsewhere == set(KINDS), "a kind was added: give it a spec"
    for name, fields in specs.items():
        fig = build_figure(reader, {"kind": name, **fields})
        assert isinstance(fig, go.Figure) and fig.data, name


def test_names_are_unique_and_export_kinds_come_from_the_table():
    assert len(KINDS) == len(FIGURES)
    assert list(EXPORT_KINDS) == [k.export_name for k in FIGURES if k.export_name]
    assert {k.preset for k in FIGURES} <= {"column", "text"}


def test_the_cli_figure_is_the_page_figure(seeded):
    s, reader = seeded
    spec = export_spec("heatmap", s.heads, FigureRequest(metric="induction_score"))
    assert spec == {
        "kind": "head_heatmap",
        "run": s.heads,
        "metric": "induction_score",
        "prompt": 0,
    }
    cli = run_figure(reader, s.heads, "heatmap", FigureRequest(metric="induction_score"))
    page = build_figure(
        reader, {"kind": "head_heatmap", "run": s.heads, "metric": "induction_score"}
    )
    assert cli.to_plotly_json() == page.to_plotly_json()


def test_a_bundle_draws_what_the_run_has(seeded):
    s, reader = seeded
    store = reader.store
    stems = [stem for stem, _ in bundle_specs(reader, store.get_run(s.heads))]
    assert "heatmap_induction_score" in stems and any(x.startswith("pattern_") for x in stems)
    circuit = [stem for stem, _ in bundle_specs(reader, store.get_run(s.circuits[0]))]
    assert circuit == ["circuit", "faithfulness", "roc"]
    assert [stem for stem, _ in bundle_specs(reader, store.get_run(s.sae))][-1] == "sae-training"
    for run in (s.heads, s.circuits[0], s.sae, s.patch):
        for _, spec in bundle_specs(reader, store.get_run(run)):
            assert build_figure(reader, spec).data


@pytest.mark.parametrize(
    ("kind", "request_", "message"),
    [
        ("nope", FigureRequest(), "unknown figure kind 'nope'; choose one of: heatmap, position"),
        ("heatmap", FigureRequest(metric="x"), "no per-head metric 'x'; choose one of:"),
        ("pattern", FigureRequest(), "needs --head LAYER.HEAD"),
        ("sae-heads", FigureRequest(), "needs --feature N"),
        ("circuit", FigureRequest(), "has no circuit edges"),
        ("roc", FigureRequest(), "no 'roc' in the run summary"),
    ],
)
def test_wrong_requests_name_the_fix(seeded, kind, request_, message):
    s, reader = seeded
    run = s.sae if kind == "sae-heads" else s.heads
    with pytest.raises(ExportError, match=message.replace("(", r"\(")):
        run_figure(reader, run, kind, request_)
