"""Circuit overlap across tasks: known answers on circuit runs whose node sets are known
(stored through the real store as a worker stores them, and real EAP runs on the zoo's
induction model), the ground-truth overlap of code-6l's three tasks against numbers derived by
hand from the ground-truth files, refusals, the figures, the CLI and the Python API."""

from __future__ import annotations

import json

import pytest

import headlab
from analysis.circuits import overlap as sets
from analysis.circuits.ground_truth import load_ground_truth
from app.export.errors import ExportError
from app.figures.overlap import groups
from app.services.figures import FigureRequest, build_figure, export_spec, run_figure
from app.services.overlap import OverlapError, circuit_overlap
from app.services.results import ResultsReader
from storage.records import HeadResultIn, RunOutput
from tests.app.cli_run import run_cli
from tests.app.overlap_runs import CIRCUITS, EDGES, finished_circuit, grid_nodes, store_circuits

CODE = "zoo:code-6l"
TASKS = ("identifier-induction", "attribute-recall", "bracket-match")


@pytest.fixture
def runs(store) -> dict[str, int]:
    return store_circuits(store)


def pair(found, level: str, a: int, b: int) -> sets.PairOverlap:
    labels = {r.id: r.label for r in found.runs}
    return next(p for p in found.pairs(level) if (p.a, p.b) == (labels[a], labels[b]))


# -- the measures -----------------------------------------------------------------------------


def test_jaccard_and_overlap_coefficient_by_their_definitions():
    a, b = frozenset("abcd"), frozenset("cdef")
    assert sets.jaccard(a, b) == 2 / 6 and sets.overlap_coefficient(a, b) == 2 / 4
    assert sets.jaccard(a, a) == 1.0 and sets.overlap_coefficient(a, a) == 1.0
    inner = frozenset("ab")  # contained: overlap coefficient 1, Jaccard |B|/|A|
    assert sets.overlap_coefficient(a, inner) == 1.0 and sets.jaccard(a, inner) == 0.5
    assert sets.jaccard(frozenset(), frozenset()) is None
    assert sets.overlap_coefficient(a, frozenset()) is None
    assert sets.level_set({"a0.h1", "m0", "input", "logits", "a1.kv0<v>"}, "heads") == {"a0.h1"}
    assert sets.level_set({"a0.h1", "m0", "input", "logits"}, "nodes") == {"a0.h1", "m0"}
    assert sets.category([], 3) == "none" and sets.category(["x", "y", "z"], 3) == "all"
    assert sets.category(["x"], 3) == "only:x" and sets.category(["x", "y"], 3) == "some:2"


# -- stored circuits with known nodes ---------------------------------------------------------


def test_three_known_circuits_give_the_exact_coefficients(store, runs):
    found = circuit_overlap(store, [runs["A"], runs["B"], runs["C"]])
    a, b, c = runs["A"], runs["B"], runs["C"]
    # heads A = {a0.h1, a1.h2, a1.h3}, B = {a0.h0, a0.h1, a1.h2}, C = {a1.h0, a1.h2}
    expected_heads = {(a, b): (2, 4, 2 / 4, 2 / 3), (a, c): (1, 4, 1 / 4, 1 / 2),
                      (b, c): (1, 4, 1 / 4, 1 / 2)}  # fmt: skip
    # nodes add m0 to A and m0, m1 to C
    expected_nodes = {(a, b): (2, 5, 2 / 5, 2 / 3), (a, c): (2, 6, 2 / 6, 2 / 4),
                      (b, c): (1, 6, 1 / 6, 1 / 3)}  # fmt: skip
    for level, expected in (("heads", expected_heads), ("nodes", expected_nodes)):
        for (x, y), (shared, union, jac, ovl) in expected.items():
            p = pair(found, level, x, y)
            assert (p.n_shared, p.n_union) == (shared, union), (level, x, y)
            assert p.jaccard == pytest.approx(jac) and p.overlap == pytest.approx(ovl)
    assert found.matrix("heads", "jaccard") == [
        [1.0, 0.5, 0.25], [0.5, 1.0, 0.25], [0.25, 0.25, 1.0]
    ]  # fmt: skip
    assert found.shared("heads") == ["a1.h2"]
    specific = found.specific("nodes")
    assert list(specific.values()) == [["a1.h3"], ["a0.h0"], ["a1.h0", "m1"]]


def test_a_circuit_overlapped_with_itself_gives_one(store, runs):
    members, _, task = CIRCUITS["A"]
    twin = finished_circuit(store, "ic-twin", task, members, EDGES["A"])
    found = circuit_overlap(store, [runs["A"], twin])
    for level in ("heads", "nodes"):
        p = found.pairs(level)[0]
        assert (p.jaccard, p.overlap) == (1.0, 1.0)
        assert found.matrix(level, "overlap") == [[1.0, 1.0], [1.0, 1.0]]
    assert {e["source"] + ">" + e["target"] for e in found.shared_edges()} == {
        "a0.h1>a1.h2<k>", "a1.h2>logits", "input>a0.h1<q>"
    }  # fmt: skip
    assert all(r["group"] in ("all", "none") for r in found.head_membership())


def test_heads_are_grouped_and_shared_edges_carry_each_runs_score(store, runs):
    found = circuit_overlap(store, [runs["A"], runs["B"], runs["C"]])
    labels = {k: f"#{runs[k]} {CIRCUITS[k][2]}" for k in runs}
    groups_by_head = {r["node"]: r["group"] for r in found.head_membership()}
    assert groups_by_head == {
        "a0.h0": f"only:{labels['B']}", "a0.h1": "some:2", "a0.h2": "none", "a0.h3": "none",
        "a1.h0": f"only:{labels['C']}", "a1.h1": "none", "a1.h2": "all",
        "a1.h3": f"only:{labels['A']}",
    }  # fmt: skip
    # a0.h1 -> a1.h2<k> is in A's and B's circuits but stored outside C's: not shared
    assert found.shared_edges() == [
        {"source": "a1.h2", "target": "logits", f"score {labels['A']}": 2.5,
         f"score {labels['B']}": -0.5, f"score {labels['C']}": 4.0}
    ]  # fmt: skip


def test_each_circuit_against_its_tasks_ground_truth(store, runs):
    found = circuit_overlap(store, [runs["A"], runs["B"], runs["C"]])
    # induction-contrast's ground truth: heads a0.h2, a0.h3, a1.h0, a1.h1, a1.h2, a1.h3
    truth_a, truth_b, truth_c = found.truths
    assert truth_a.name == "zoo:induction-2l/induction-contrast"
    assert truth_a.heads is not None and truth_a.nodes is not None
    assert (truth_a.heads.n_shared, truth_a.heads.n_union) == (2, 7)  # a1.h2, a1.h3
    assert truth_a.heads.jaccard == pytest.approx(2 / 7)
    assert truth_a.heads.overlap == pytest.approx(2 / 3)
    assert truth_a.nodes.jaccard == pytest.approx(2 / 8)  # A's m0 is not in the truth
    assert truth_b.heads is not None and truth_b.heads.jaccard == pytest.approx(1 / 8)
    assert truth_c.name is None and "no ground truth for task 'induction'" in str(truth_c.reason)
    assert found.truth_sets("heads") is None  # not every run has one: no ground-truth pairs
    assert all(row["of"] == "circuits" for row in found.pair_rows())
    both = circuit_overlap(store, [runs["A"], runs["B"]])
    truth_pairs = [row for row in both.pair_rows() if row["of"] == "ground truths"]
    assert [(r["level"], r["jaccard"], r["overlap"]) for r in truth_pairs] == [
        ("heads", 1.0, 1.0), ("nodes", 1.0, 1.0)
    ]  # fmt: skip


def test_code_6l_ground_truths_overlap_as_derived_by_hand(store):
    """Circuits holding exactly each task's ground-truth nodes. By hand from the files (heads:
    identifier-induction 25, attribute-recall 32, bracket-match 22; all six MLPs in each):
    II∩AR: a0.h6-7, a1.*, a2.{0,1,4,5,6,7}, a4.{0,1,4,5,6,7}, a5.h5 = 23 of 34;
    II∩BM: a0.h7, a2.h2, a2.h7, a4.h{0,1,4,5} = 7 of 40; AR∩BM: a0.h{0,1,7}, a2.h7, a3.h{4,5},
    a4.h{0,1,3,4,5} = 11 of 43."""
    ids = []
    for task in TASKS:
        truth = load_ground_truth(None, CODE, task)
        members = {n for n in truth.nodes if n not in ("input", "logits")}
        nodes = grid_nodes(6, 8)
        ids.append(finished_circuit(store, f"{task}-8", task, members, [], CODE, nodes=nodes))
    found = circuit_overlap(store, ids)
    ii, ar, bm = ids
    by_hand = {
        "heads": {(ii, ar): (23, 34, 25), (ii, bm): (7, 40, 22), (ar, bm): (11, 43, 22)},
        "nodes": {(ii, ar): (29, 40, 31), (ii, bm): (13, 46, 28), (ar, bm): (17, 49, 28)},
    }
    for level, expected in by_hand.items():
        for (x, y), (shared, union, smaller) in expected.items():
            p = pair(found, level, x, y)
            assert (p.n_shared, p.n_union) == (shared, union), (level, x, y)
            assert p.jaccard == shared / union and p.overlap == shared / smaller
    assert found.shared("heads") == ["a0.h7", "a2.h7", "a4.h0", "a4.h1", "a4.h4", "a4.h5"]
    assert list(found.specific("heads").values()) == [
        ["a2.h3"],
        ["a0.h4", "a0.h5", "a5.h1", "a5.h7"],
        ["a3.h0", "a3.h1", "a3.h2", "a3.h3", "a3.h6", "a3.h7", "a4.h2", "a5.h2", "a5.h3",
         "a5.h6"],
    ]  # fmt: skip
    for t in found.truths:  # each circuit is its ground truth
        assert t.heads is not None and (t.heads.jaccard, t.heads.overlap) == (1.0, 1.0)
    truth_rows = [r for r in found.pair_rows() if r["of"] == "ground truths"]
    circuit_rows = [r for r in found.pair_rows() if r["of"] == "circuits"]
    strip = [{k: v for k, v in r.items() if k != "of"} for r in truth_rows]
    assert strip == [{k: v for k, v in r.items() if k != "of"} for r in circuit_rows]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s, r: [r["A"]], "needs two or more circuit runs, got 1"),
        (lambda s, r: [r["A"], r["A"]], "is named twice; name each run once"),
        (lambda s, r: [r["A"], 999], "no run 999; list circuit runs with `headlab runs list"),
        (lambda s, r: [r["A"], _heads_run(s)], "is a heads run, not a circuit run"),
        (lambda s, r: [r["A"], _queued_circuit(s)], "is QUEUED, not FINISHED; overlap reads"),
        (lambda s, r: [r["A"], _other_model(s)], "are on different models"),
    ],
)
def test_refusals_are_one_line_naming_the_fix(store, runs, make, message):
    with pytest.raises(OverlapError, match=message.replace("(", r"\(")) as err:
        circuit_overlap(store, make(store, runs))
    assert "\n" not in str(err.value)


def _heads_run(store) -> int:
    run = store.enqueue_run("heads", {"kind": "heads"}, "zoo:induction-2l", None, {}, "t")
    store.claim_run(run.id, "w")
    output = RunOutput(head_results=[HeadResultIn("x", 0, 0, 1.0)])
    return store.finish_run(run.id, output).id


def _queued_circuit(store) -> int:
    config = {"kind": "circuit", "model": "zoo:induction-2l"}
    return store.enqueue_run("circuit", config, "zoo:induction-2l", None, {}, "t").id


def _other_model(store) -> int:
    nodes = grid_nodes(3, 4)
    return finished_circuit(
        store, "gt", "greater-than", {"a0.h0"}, [], "zoo:greater-than-3l", nodes=nodes
    )


def test_real_eap_circuits_same_pairs_overlap_fully_other_task_partly(tmp_path):
    """Two EAP runs on the same pairs find the same circuit (1.0); a run on another task's
    pairs overlaps the first by the sizes its stored nodes give."""
    lab = headlab.Lab(tmp_path / "home")
    lab.generate_prompts("induction-contrast", "zoo:induction-2l", n=6, name="ic")
    lab.generate_prompts("induction", "zoo:induction-2l", n=6, name="ind")
    first, again, other = (
        lab.run("circuit", "zoo:induction-2l", name, method="eap", progress=False).id
        for name in ("ic", "ic", "ind")
    )
    found = lab.circuit_overlap([first, again, other])
    heads = found.pairs[(found.pairs["level"] == "heads") & (found.pairs["of"] == "circuits")]
    assert heads.iloc[0][["jaccard", "overlap"]].tolist() == [1.0, 1.0]
    nodes = {r: set(lab.store.nodes(r).query("in_circuit")["name"]) - {"input", "logits"}
             for r in (first, other)}  # fmt: skip
    inter, union = nodes[first] & nodes[other], nodes[first] | nodes[other]
    assert heads.iloc[1]["jaccard"] == pytest.approx(len(inter) / len(union))
    assert heads.iloc[1]["overlap"] == pytest.approx(
        len(inter) / min(len(nodes[first]), len(nodes[other]))
    )
    same = found.data.shared_edges()
    kept = lab.store.edges(first).query("in_circuit")
    assert len(same) <= len(kept)  # shared edges are in-circuit edges of every run
    assert found.ground_truth.iloc[0]["ground_truth"] == "zoo:induction-2l/induction-contrast"
    lab.close()


# -- figures ----------------------------------------------------------------------------------


def test_the_membership_grid_colours_each_head_by_its_group(store, runs):
    ids = [runs["A"], runs["B"], runs["C"]]
    fig = build_figure(ResultsReader(store), {"kind": "circuit_overlap", "runs": ids})
    labels = [f"#{runs[k]} {CIRCUITS[k][2]}" for k in "ABC"]
    index = {g: i for i, (g, _, _) in enumerate(groups(labels))}
    z = fig.data[0].z
    assert z[1][2] == index["all"] and z[0][1] == index["some:2"]
    assert z[1][3] == index[f"only:{labels[0]}"] and z[0][0] == index[f"only:{labels[1]}"]
    assert z[1][0] == index[f"only:{labels[2]}"] and z[0][2] == index["none"]
    legend = [t.name for t in fig.data[1:]]
    assert legend == [
        "in all 3 circuits (shared)", "in 2 of 3 circuits",
        *(f"only in {label} (task-specific)" for label in labels), "in no circuit",
    ]  # fmt: skip
    assert fig.layout.showlegend is True


def test_the_matrix_figure_holds_both_measures(store, runs):
    ids = [runs["A"], runs["B"], runs["C"]]
    reader = ResultsReader(store)
    fig = build_figure(reader, {"kind": "overlap_matrix", "runs": ids, "level": "nodes"})
    found = circuit_overlap(store, ids)
    assert [list(row) for row in fig.data[0].z] == found.matrix("nodes", "jaccard")
    assert [list(row) for row in fig.data[1].z] == found.matrix("nodes", "overlap")
    assert fig.data[0].text[0][1] == "0.40"


def test_multi_run_kinds_take_every_run_and_one_run_kinds_refuse_several(store, runs):
    ids = [runs["A"], runs["B"]]
    spec = export_spec("overlap-matrix", ids, FigureRequest(level="nodes"))
    assert spec == {"kind": "overlap_matrix", "runs": ids, "level": "nodes", "prompt": 0}
    assert export_spec("roc", runs["A"], FigureRequest())["runs"] == [runs["A"]]
    with pytest.raises(ExportError, match="figure kind circuit draws 1 run; got 2 run ids"):
        export_spec("circuit", ids, FigureRequest())
    reader = ResultsReader(store)
    with pytest.raises(ExportError, match="needs two or more circuit runs"):
        run_figure(reader, runs["A"], "circuit-overlap", FigureRequest())
    with pytest.raises(ExportError, match="--level must be heads or nodes"):
        run_figure(reader, ids, "overlap-matrix", FigureRequest(level="mlps"))


# -- CLI and Python API -----------------------------------------------------------------------


def test_cli_prints_pairs_shared_and_specific_heads_and_edges(store, runs, monkeypatch, capsys):
    ids = [str(runs[k]) for k in "ABC"]
    code, out, err = run_cli(capsys, "compare", "circuits", *ids)
    assert code == 0, err
    a, b, c = ids
    assert f"│ #{a} │ #{b} │ 2/4       │ 0.500   │ 0.667   │ 2/5       │ 0.400   │ 0.667" in out
    assert "heads in every circuit: a1.h2" in out
    assert f"only in #{c}: a1.h0, m1" in out
    assert "edges in every circuit: 1" in out and "│ a1.h2  │ logits │ 2.5" in out
    assert f"#{c}: no ground truth: zoo:induction-2l has no ground truth for task" in out
    code, out, _ = run_cli(capsys, "compare", "circuits", *ids, "--json")
    data = json.loads(out)
    assert data["shared_heads"] == ["a1.h2"] and len(data["shared_edges"]) == 1
    assert data["pairs"][0]["jaccard"] == 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["1"], "error: overlap needs two or more circuit runs, got 1"),
        (["1", "77"], "error: no run 77"),
        (["1", "x"], "Invalid value for 'runs'"),
    ],
)
def test_cli_errors_are_one_line(store, runs, monkeypatch, capsys, args, message):
    code, out, err = run_cli(capsys, "compare", "circuits", *args)
    assert code in (1, 2) and message in out + err
    assert "Traceback" not in out + err


def test_cli_exports_a_figure_of_several_runs(store, runs, monkeypatch, capsys, tmp_path):
    ids = [str(runs[k]) for k in "ABC"]
    out = tmp_path / "overlap.svg"
    args = ["export", "figure", *ids, "--kind", "circuit-overlap", "--out", str(out)]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    svg = out.read_text()
    assert "<svg" in svg[:2000] and "in all 3 circuits (shared)" in svg
    code, _, err = run_cli(capsys, "export", "figure", *ids, "--kind", "heatmap",
                       "--out", str(tmp_path / "x.svg"))  # fmt: skip
    assert code == 1 and "figure kind heatmap draws 1 run; got 3 run ids" in err


def test_lab_circuit_overlap_gives_frames_and_figures(store, runs, headlab_env):
    lab = headlab.Lab()
    found = lab.circuit_overlap([runs["A"], runs["B"], runs["C"]])
    assert set(found.pairs.columns) >= {"of", "level", "a", "b", "jaccard", "overlap"}
    assert len(found.heads) == 8 and found.heads.set_index("node").loc["a1.h2", "group"] == "all"
    assert found.shared_edges.iloc[0][["source", "target"]].tolist() == ["a1.h2", "logits"]
    assert found.shared() == ["a1.h2"]
    grid = found.figure("circuit-overlap")
    page = build_figure(
        ResultsReader(lab.store), {"kind": "circuit_overlap", "runs": found.run_ids}
    )
    assert grid.to_json() == page.to_json()
    assert found.figure("overlap-matrix", level="nodes").data[0].z[0][1] == 0.4
    with pytest.raises(headlab.HeadlabError, match="unknown overlap figure 'heatmap'"):
        found.figure("heatmap")
    with pytest.raises(headlab.HeadlabError, match="is named twice"):
        lab.circuit_overlap([runs["A"], runs["A"]])
    lab.close()
