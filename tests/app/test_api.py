"""``import headlab``: the Python API on a real SQLite store and the zoo models, inline runs of
every run kind, and its results checked against what the CLI's own readers return."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import headlab
from app.cli.runs import run_details
from app.launching import analysis_kinds
from storage.records import RunStatus

MODEL = "zoo:induction-2l"
FAST = {
    "sae-train": {"training_tokens": 4096, "d_sae": 32, "eval_tokens": 512, "context_size": 16},
    "sae-circuit": {"steps": 20},
    "throughput": {"steps": 1},
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> headlab.Lab:
    lab = headlab.Lab(home=tmp_path_factory.mktemp("lab"))
    lab.generate_prompts("induction-contrast", MODEL, n=6, name="ind6")
    return lab


@pytest.fixture(scope="module")
def heads_run(lab: headlab.Lab) -> headlab.Run:
    return lab.run("heads", MODEL, "ind6", progress=False)


def test_a_fresh_lab_lists_the_zoo(tmp_path):
    lab = headlab.Lab(home=tmp_path / "fresh")
    models = lab.models()
    assert set(models["spec"]) >= {MODEL, "zoo:greater-than-3l"}
    assert models["builtin"].all() and not models["registered"].any()
    assert int(models.set_index("spec").loc[MODEL, "n_layers"]) == 2
    assert lab.runs().empty and lab.prompt_sets().empty


def test_prompt_sets_generate_import_and_read(lab, tmp_path):
    assert lab.pairs("ind6").shape[0] == 6
    path = tmp_path / "pairs.csv"
    pairs = lab.pairs("ind6")[["clean", "corrupted", "correct", "incorrect"]]
    pairs.to_csv(path, index=False)
    record = lab.import_prompts(path, "imported", MODEL)
    assert record.n_pairs == 6
    assert list(lab.pairs("imported")["clean"]) == list(pairs["clean"])
    with pytest.raises(headlab.HeadlabError, match="already exists"):
        lab.import_prompts(path, "imported", MODEL)
    with pytest.raises(headlab.HeadlabError, match="the zoo has"):
        lab.generate_prompts("induction", "zoo:nope", n=2)


def test_heads_tables_equal_the_store_and_the_cli(lab, heads_run):
    grid = heads_run.head_grid("induction_score")
    assert grid.shape == (2, 4)
    details = run_details(lab.store, heads_run.record, all_rows=False)
    cli_rows = {(r["layer"], r["head"]): r["value"] for r in details["results"]["induction_score"]}
    for (layer, head), value in cli_rows.items():
        assert grid.loc[layer, head] == pytest.approx(value)
    # layer 1 holds the induction heads of this model (MECHANISM.md), layer 0 none
    assert grid.loc[1].max() > 0.2 > grid.loc[0].max()
    assert set(heads_run.metrics()) >= {"prev_token_score", "induction_score", "bos_mass"}


def test_attention_pattern_is_an_array_with_tokens(heads_run):
    pattern = heads_run.attention(1, 0, prompt=0)
    n = len(pattern.tokens)
    assert pattern.matrix.shape == (n, n) and pattern.tokens[0] == "<bos>"
    np.testing.assert_allclose(pattern.matrix.sum(axis=1), 1.0, atol=2e-3)  # stored as fp16
    assert np.allclose(np.triu(pattern.matrix, k=1), 0.0)  # causal
    assert pattern.frame().shape == (n, n)


def test_circuit_edges_nodes_summary_and_figure(lab):
    run = lab.run("circuit", MODEL, "ind6", method="eap", progress=False)
    edges, nodes = run.edges(), run.nodes()
    assert list(edges.columns) == ["source", "target", "score", "in_circuit"]
    assert len(edges) == len(lab.store.edges(run.id)) > 0
    pd.testing.assert_frame_equal(
        edges[["source", "target"]], lab.store.edges(run.id)[["source", "target"]]
    )
    assert nodes["in_circuit"].any()
    assert "faithfulness" in run.summary
    assert isinstance(run.figure("circuit", top_k=10), go.Figure)
    shown = run_details(lab.store, run.record, all_rows=False)
    assert len(shown["edges"]) == len(edges)


def test_every_run_kind_launches(lab):
    done = {}
    for kind in sorted(analysis_kinds(), key=lambda k: k != "sae-train"):  # sae-eval needs it
        options = dict(FAST.get(kind, {}))
        if kind == "sae-eval":
            options["sae_run"] = done["sae-train"].id
        run = lab.run(kind, MODEL, "ind6", progress=False, **options)
        assert run.status is RunStatus.FINISHED, (kind, run.record.error)
        done[kind] = run
    assert set(done) == set(analysis_kinds())
    features = done["sae-train"].features()
    assert len(features) == 32 and "frequency" in features.columns
    assert not done["patch"].heads().empty


def test_queued_run_waits_for_a_worker(lab):
    from analysis.worker import Worker

    run = lab.run("dla", MODEL, "ind6", wait=False)
    assert run.status is RunStatus.QUEUED
    Worker(lab.store).reap_and_claim()
    assert run.wait(progress=False).status is RunStatus.FINISHED


def test_bad_requests_raise_one_error_type(lab, heads_run):
    with pytest.raises(headlab.HeadlabError, match="method"):
        lab.run("circuit", MODEL, "ind6", method="foo")
    with pytest.raises(headlab.HeadlabError, match="no prompt set named 'nope'"):
        lab.run("heads", MODEL, "nope")
    with pytest.raises(headlab.HeadlabError, match="unknown run kind"):
        lab.run("nope", MODEL, "ind6")
    with pytest.raises(headlab.HeadlabError, match="choose one of"):
        heads_run.heads("nope")
    with pytest.raises(headlab.HeadlabError, match="unknown figure option"):
        heads_run.figure("heatmap", colour="red")
    with pytest.raises(headlab.HeadlabError, match="does not exist"):
        lab.get_run(10_000)
    with pytest.raises(headlab.RunFailed) as failed:
        lab.run("throughput", "zoo:greater-than-3l", "ind6", progress=False)
    assert lab.get_run(failed.value.run_id).status is RunStatus.FAILED


def test_compare_and_export(lab, heads_run, tmp_path):
    other = lab.run("heads", MODEL, "imported", progress=False)
    table = lab.compare(heads_run.id, other.id, "induction_score")
    assert len(table) == 8
    assert np.allclose(table["difference"], table["b"] - table["a"])
    assert isinstance(lab.compare_figure(heads_run.id, other.id, "induction_score"), go.Figure)
    svg = heads_run.export_figure(tmp_path / "h.svg", "heatmap", metric="induction_score")
    assert svg.read_text().lstrip().startswith("<")
    bundle = heads_run.export_bundle(tmp_path / "run.zip")
    assert bundle.stat().st_size > 1000


def test_run_options_describe_the_config():
    options = headlab.Lab.run_options("circuit")
    assert "method" in set(options["name"])
    assert "circuit" in headlab.Lab.run_kinds()
