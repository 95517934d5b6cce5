"""The Circuit overlap page on stored circuit runs: the page from the URL, its callback (figures
with their export specs, tables, refusals as messages), and the links from the Circuits and
Compare pages."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from app import ids
from app.callbacks import export
from app.callbacks.overlap import show_overlap
from app.components.native import ExportMenu
from app.pages import route_for
from app.services.context import WebContext
from storage.records import HeadResultIn, RunOutput
from storage.settings import load_settings
from tests.app.overlap_runs import store_circuits


@pytest.fixture
def web(store) -> tuple[WebContext, dict[str, int]]:
    runs = store_circuits(store)
    return WebContext.open(load_settings(), store), runs


def find(node: Any, test) -> list[Any]:
    """Every component under ``node`` for which ``test`` holds."""
    found = [node] if test(node) else []
    children = node if isinstance(node, list) else getattr(node, "children", None)
    if isinstance(children, list):
        for child in children:
            found += find(child, test)
    elif children is not None and not isinstance(children, str):
        found += find(children, test)
    return found


def by_id(node: Any, wanted: str) -> Any:
    return find(node, lambda n: getattr(n, "id", None) == wanted)[0]


def test_the_page_opens_with_the_runs_of_its_url(web):
    ctx, runs = web
    page = route_for("/overlap").build(ctx, {"runs": f"{runs['A']},{runs['C']}"})
    picker = by_id(page, ids.OVERLAP_RUNS)
    assert picker.value == [runs["A"], runs["C"]]
    assert {o["value"] for o in picker.options} == set(runs.values())
    menus = find(page, lambda n: isinstance(n, ExportMenu))
    assert [m.id["figure"] for m in menus] == ["circuit-overlap", "overlap-matrix"]
    default = route_for("/overlap").build(ctx, {})  # newest run per prompt set, at most three
    assert by_id(default, ids.OVERLAP_RUNS).value == sorted(runs.values())
    bad = route_for("/overlap").build(ctx, {"runs": "1;2"})
    assert "runs must be comma-separated run ids such as 3,5,8" in str(bad)


def test_the_callback_draws_both_figures_and_fills_the_tables(web):
    ctx, runs = web
    ids = [runs["A"], runs["B"], runs["C"]]
    grid, grid_spec, matrix, matrix_spec, note, note_class, pairs, edges, truth = show_overlap(
        ctx, ids, "nodes"
    )
    assert grid_spec == {"kind": "circuit_overlap", "runs": ids}
    assert matrix_spec == {"kind": "overlap_matrix", "runs": ids, "level": "nodes"}
    names = [t.get("name") for t in grid["data"][1:]]
    assert names[0] == "in all 3 circuits (shared)" and names[-1] == "in no circuit"
    assert note == "" and note_class == "message empty"
    assert {row["level"] for row in pairs.data} == {"nodes"} and len(pairs.data) == 3
    assert pairs.data[0]["jaccard"] == 0.4
    assert [(row["source"], row["target"]) for row in edges.data] == [("a1.h2", "logits")]
    assert "no ground truth for task 'induction'" in str(truth)


def test_the_callback_shows_a_refusal_as_a_message(web, store):
    ctx, runs = web
    out = show_overlap(ctx, [runs["A"]], "heads")
    assert out[1] is None and out[3] is None  # nothing to export
    assert out[4] == "overlap needs two or more circuit runs, got 1; name at least two"
    assert out[5] == "message warn"


def test_circuits_and_compare_pages_link_to_the_overlap(web, store):
    ctx, runs = web
    links = lambda page: [  # noqa: E731
        n.href for n in find(page, lambda n: type(n).__name__ == "Link")
    ]
    compare = route_for("/compare").build(ctx, {"a": str(runs["A"]), "b": str(runs["B"])})
    assert f"/overlap?runs={runs['A']},{runs['B']}" in links(compare)
    heads = []
    for _ in range(2):
        run = store.enqueue_run("heads", {"kind": "heads"}, "zoo:induction-2l", None, {}, "t")
        store.claim_run(run.id, "w")
        out = RunOutput(head_results=[HeadResultIn("x", 0, 0, 1.0)])
        heads.append(store.finish_run(run.id, out).id)
    other = route_for("/compare").build(ctx, {"a": str(heads[0]), "b": str(heads[1])})
    assert not [h for h in links(other) if h.startswith("/overlap")]
    circuits = route_for("/circuits").build(ctx, {})
    assert any(h.startswith("/overlap") for h in links(circuits))


def test_the_export_menu_rebuilds_the_figure_from_its_spec(web):
    ctx, runs = web
    spec = {"kind": "overlap_matrix", "runs": [runs["A"], runs["B"]], "level": "heads"}
    download, error = export.export_figure(ctx, 1, "svg", "text", spec)
    assert error == "" and download["filename"].endswith("_text.svg")
    svg = base64.b64decode(download["content"]).decode()
    assert "<svg" in svg[:2000] and "0.67" in svg  # A·B heads overlap coefficient 2/3
