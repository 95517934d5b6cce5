"""The Heads page on a real ``taxonomy`` run (a needle set on the zoo's induction model): the
default metric, the aggregate-only metric list, the selected head's figures in the head detail
and the run-level figures below the grid, each with its spec for export; figures that cannot be
drawn show their message, never a traceback."""

from __future__ import annotations

from typing import Any

import pytest

from app import ids
from app.callbacks import heads
from app.callbacks.wiring import Fired
from app.components.heads import heads_layout
from app.components.native import ExportMenu
from app.export.errors import ExportError
from app.services import heads_view
from app.services.context import WebContext
from app.services.figures import KINDS
from storage.errors import NotFound
from storage.settings import load_settings
from tests.app.taxonomy_run import taxonomy_run

MODEL = "zoo:induction-2l"
HEAD_KINDS = ["retrieval_map", "span_profile", "dormancy"]
RUN_KINDS = ["kv_curve", "head_similarity", "massive_activations"]


@pytest.fixture(scope="module")
def taxonomy(tmp_path_factory):
    """(web context, taxonomy run id) on one store for the module (a run takes ~5 s)."""
    home = tmp_path_factory.mktemp("taxonomy") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("HEADLAB_HOME", str(home))
    patch.delenv("HEADLAB_DB", raising=False)
    lab, run_id = taxonomy_run(home, 8, "nd")
    yield WebContext.open(load_settings(), lab.store), run_id
    lab.close()
    patch.undo()


def export_specs(component: Any) -> dict[str, dict[str, Any]]:
    """Each export menu under ``component``: its figure name → its spec."""
    out: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, ExportMenu):
            out[node.id["figure"]] = getattr(node, "spec", None)
        children = getattr(node, "children", None) if not isinstance(node, list) else node
        for child in children if isinstance(children, list | tuple) else [children]:
            if child is not None and not isinstance(child, str | int | float):
                walk(child)

    walk(component)
    return out


def drawn_or_said(view: heads_view.FigureView) -> None:
    """A figure of a known kind is drawn; any other (not landed yet, no data) says why."""
    if view.figure is None:
        assert view.message and "Traceback" not in view.message
    if view.name in KINDS:
        assert view.figure is not None, view.message


def test_taxonomy_run_defaults_to_retrieval_and_lists_aggregate_metrics(taxonomy):
    ctx, run_id = taxonomy
    state = heads_view.choices(ctx, run_id, None)
    assert state.metric == "retrieval_score"
    assert {"retrieval_score", "streaming_kl", "dormancy_rate"} <= set(state.metric_options)
    # per-prompt-only and per-layer rows have no per-head heatmap: not offered
    assert not {"dormant", "output_norm_ratio", "massive_peak", "massive_ratio"} & set(
        state.metric_options
    )
    for metric in state.metric_options:
        assert len(ctx.reader.head_grid(run_id, metric).frame) == 2 * 4, metric
    assert heads_view.default_metric(["induction_score", "streaming_kl"], "taxonomy") == (
        "streaming_kl"
    )
    assert heads_view.default_metric(["induction_score", "streaming_kl"], "heads") == (
        "induction_score"
    )


def test_head_detail_has_the_heads_taxonomy_figures(taxonomy):
    ctx, run_id = taxonomy
    detail = heads_view.head_detail(ctx, run_id, 1, 2, 0)
    assert [v.spec for v in detail.figures] == [
        {"kind": k, "run": run_id, "layer": 1, "head": 2} for k in HEAD_KINDS
    ]
    for view in detail.figures:
        drawn_or_said(view)
    out = heads.select_head(ctx, Fired(id=ids.HEADS_CLICK), {"layer": 1, "head": 2}, None, 0,
                            None, run_id, "retrieval_score", None)  # fmt: skip
    assert out[0] == [1, 2] and out[1] == "Head 1.2"
    specs = export_specs(out[8])
    assert specs == {
        f"heads-head-{k}": {"kind": k, "run": run_id, "layer": 1, "head": 2} for k in HEAD_KINDS
    }


def test_run_level_section_has_the_runs_figures(taxonomy):
    ctx, run_id = taxonomy
    state = heads_view.initial(ctx, run_id, None)
    assert [v.spec for v in state.run_figures] == [{"kind": k, "run": run_id} for k in RUN_KINDS]
    for view in state.run_figures:
        drawn_or_said(view)
    page = heads_layout(state)
    specs = export_specs(page)
    for kind in RUN_KINDS:
        assert specs[f"heads-run-{kind}"] == {"kind": kind, "run": run_id}
    assert specs["heads-heatmap"] == heads_view.heatmap_spec(run_id, "retrieval_score")
    picked = heads.pick_run(ctx, run_id, None)
    assert picked[1] == "retrieval_score" and picked[7] == []
    assert set(export_specs(picked[6])) == {f"heads-run-{k}" for k in RUN_KINDS}


def test_a_figure_that_cannot_be_drawn_shows_its_message(taxonomy, monkeypatch):
    ctx, run_id = taxonomy

    def refuse(reader, spec):
        if spec["kind"] == "kv_curve":
            raise NotFound(f"run {spec['run']} has no kv curve")
        raise ExportError(f"unknown figure kind {spec['kind']!r}")

    monkeypatch.setattr(heads_view, "page_figure", refuse)
    views = heads_view.taxonomy_run_figures(ctx, ctx.store.get_run(run_id))
    assert [v.figure for v in views] == [None] * 3
    assert views[0].message == f"run {run_id} has no kv curve"
    assert views[1].message == "unknown figure kind 'head_similarity'"
    out = heads.select_head(ctx, Fired(id=ids.HEADS_CLICK), {"layer": 0, "head": 1}, None, 0,
                            None, run_id, "retrieval_score", None)  # fmt: skip
    assert "unknown figure kind 'dormancy'" in str(out[8])
    assert len(export_specs(out[8])) == 3  # still exportable once the kind exists
