"""The figure kinds of a ``taxonomy`` run, drawn from a real run on the zoo's induction model
(a needle prompt set, so every figure has data): each builds, shows the stored values, exports
through ``headlab export figure`` and joins the run's bundle; a run without the data gets a
one-line message naming what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from app.export.errors import ExportError
from app.figures import taxonomy as taxonomy_figures
from app.services.figures import (
    EXPORT_KINDS,
    KINDS,
    FigureRequest,
    build_figure,
    bundle_specs,
    export_spec,
    run_figure,
)
from app.services.results import ResultsReader
from storage.records import HeadResultIn, PairIn, RunOutput
from tests.app.cli_run import run_cli
from tests.app.taxonomy_run import taxonomy_run

MODEL = "zoo:induction-2l"
# kind → export name; the per-head ones take --head
TAXONOMY_KINDS = {
    "kv_curve": "kv-curve",
    "retrieval_map": "retrieval-map",
    "head_similarity": "head-similarity",
    "span_profile": "span",
    "dormancy": "dormancy",
    "massive_activations": "massive",
}
PER_HEAD = {"retrieval_map", "span_profile", "dormancy"}
HEAD = (1, 2)


@pytest.fixture(scope="module")
def taxonomy(tmp_path_factory):
    """(reader, taxonomy run id, other run id) on one store for the module (~5 s)."""
    home = tmp_path_factory.mktemp("taxonomy-figures") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("HEADLAB_HOME", str(home))
    patch.delenv("HEADLAB_DB", raising=False)
    lab, run_id = taxonomy_run(home, 10, "needles")
    yield ResultsReader(lab.store), run_id, _other_run(lab.store)
    lab.close()
    patch.undo()


def _other_run(store) -> int:
    """A finished ``patch`` run with a few per-head rows: none of the taxonomy's data."""
    ps = store.add_prompt_set(
        "abab", [PairIn("A B A", "A C A", " B", " C")], source="test", model_spec=None
    )
    config = {"kind": "patch", "model": MODEL, "seed": 0, "prompt_set": "abab"}
    run = store.enqueue_run("patch", config, MODEL, ps.id, {"headlab": "0.1.0"}, "git:abc")
    claimed = store.claim_next_run("w1")
    assert claimed is not None and claimed.id == run.id
    rows = [HeadResultIn("dla", la, h, float(la + h)) for la in range(2) for h in range(4)]
    store.finish_run(run.id, RunOutput(head_results=rows))
    return run.id


def _spec(kind: str, run: int, head: tuple[int, int] = HEAD) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": kind, "run": run}
    return spec | ({"layer": head[0], "head": head[1]} if kind in PER_HEAD else {})


def _rows(reader: ResultsReader, run: int, metric: str) -> pd.DataFrame:
    return reader.store.head_results(run, metric)


def test_the_kinds_are_declared_with_their_export_names():
    assert set(TAXONOMY_KINDS) <= set(KINDS)
    for kind, export_name in TAXONOMY_KINDS.items():
        assert EXPORT_KINDS[export_name].name == kind
        spec = export_spec(export_name, 5, FigureRequest(head=(0, 1)))
        assert spec["run"] == 5 and "runs" not in spec and spec["kind"] == kind


def test_every_taxonomy_kind_builds_from_the_run(taxonomy):
    reader, run, _ = taxonomy
    for kind in TAXONOMY_KINDS:
        fig = build_figure(reader, _spec(kind, run))
        assert isinstance(fig, go.Figure) and fig.data, kind
        assert fig.layout.meta["aspect"] > 0, kind


def test_kv_curve_draws_each_ranking_and_the_bytes_saved(taxonomy):
    reader, run, _ = taxonomy
    curve = reader.store.get_run(run).summary["kv_curve"]
    fig = build_figure(reader, _spec("kv_curve", run))
    lines = [t for t in fig.data if t.name]
    metrics = ["loss", "logit_diff", "needle_accuracy"]
    assert {t.name for t in lines} == {
        "DuoAttention (streaming KL)",
        "RazorAttention (echo+induction)",
        "random, mean ± std",
    }
    assert len(lines) == 3 * len(metrics)
    by_panel = {(t.name, t.xaxis): t for t in lines}
    for col, metric in enumerate(metrics, start=1):
        axis = "x" if col == 1 else f"x{col}"
        duo = by_panel["DuoAttention (streaming KL)", axis]
        assert list(duo.x) == curve["fractions"]
        assert np.allclose(duo.y, curve["curves"]["duo"][metric]["mean"])
        random = by_panel["random, mean ± std", axis]
        assert np.allclose(random.error_y.array, curve["curves"]["random"][metric]["std"])
        assert fig.layout[f"yaxis{'' if col == 1 else col}"].title.text in (
            "loss",
            "logit difference",
            "needle accuracy",
        )
        top = fig.layout[f"xaxis{len(metrics) + col}"]
        assert top.side == "top" and top.overlaying == axis
        assert list(top.ticktext) == [f"{100 * s:.0f}%" for s in curve["kv_saved"]]
    assert "KV cache saved" in lines[0].hovertemplate
    title = fig.layout.title.text
    assert f"sink {curve['sink']}" in title and f"window {curve['window']}" in title
    assert f"of {curve['context']} tokens" in title
    one = run_figure(reader, run, "kv-curve", FigureRequest(metric="loss"))
    assert len([t for t in one.data if t.name]) == 3
    with pytest.raises(ExportError, match="no metric 'nope'; choose one of: loss"):
        run_figure(reader, run, "kv-curve", FigureRequest(metric="nope"))


def test_a_retrieval_map_cell_is_the_mean_of_its_prompts(taxonomy):
    reader, run, _ = taxonomy
    prompts = reader.store.get_run(run).summary["needle_prompts"]
    rows = _rows(reader, run, "retrieval_score")
    rows = rows[rows["prompt"].notna() & (rows["layer"] == HEAD[0]) & (rows["head"] == HEAD[1])]
    fig = build_figure(reader, _spec("retrieval_map", run))
    (trace,) = fig.data
    depths = sorted({p["depth"] for p in prompts})
    contexts = sorted({p["context"] for p in prompts})
    assert list(trace.x) == [str(c) for c in contexts]
    assert list(trace.y) == [f"{100 * d:.0f}%" for d in depths]
    z = np.asarray(trace.z, dtype=float)
    for i, d in enumerate(depths):
        for j, c in enumerate(contexts):
            mine = [k for k, p in enumerate(prompts) if p["depth"] == d and p["context"] == c]
            values = rows[rows["prompt"].isin(mine)]["value"]
            assert z[i, j] == pytest.approx(values.mean())
            assert trace.customdata[i][j] == len(values)
    assert "head 1.2" in fig.layout.title.text


def test_head_similarity_is_in_dendrogram_order_with_representatives(taxonomy):
    reader, run, _ = taxonomy
    artifact = reader.store.open_artifact(run, "head_similarity.json")
    data = json.loads(Path(artifact.path).read_text(encoding="utf-8"))
    fig = build_figure(reader, _spec("head_similarity", run))
    heat = fig.data[0]
    order = data["order"]
    expected = np.asarray(data["distance"])[np.ix_(order, order)]
    assert np.allclose(np.asarray(heat.z, dtype=float), expected)
    assert list(fig.layout.xaxis.ticktext) == [data["heads"][i] for i in order]
    starred = [t.removeprefix("★ ") for t in fig.layout.yaxis.ticktext if t.startswith("★")]
    assert sorted(starred) == sorted(data["heads"][i] for i in data["representatives"])
    stars = fig.data[1]
    assert stars.name == "representative" and len(stars.x) == len(set(data["representatives"]))
    assert len(fig.layout.shapes) == len(set(data["clusters"]))


def test_span_profile_is_the_stored_span_with_the_causal_reference(taxonomy):
    reader, run, _ = taxonomy
    rows = _rows(reader, run, "span")
    rows = rows[rows["position"].notna() & (rows["layer"] == HEAD[0]) & (rows["head"] == HEAD[1])]
    rows = rows.sort_values("position")
    fig = build_figure(reader, _spec("span_profile", run))
    reference, head = fig.data
    assert np.allclose(head.x, rows["position"].astype(float))
    assert np.allclose(head.y, rows["value"])
    assert np.allclose(reference.y, np.asarray(reference.x) + 1)
    assert (np.asarray(head.y) <= np.asarray(reference.y) + 1e-6).all()


def test_dormancy_scatters_each_prompt_and_shades_the_thresholds(taxonomy):
    reader, run, _ = taxonomy
    config = reader.store.get_run(run).config
    layer, head = 0, 0
    fig = build_figure(reader, _spec("dormancy", run, (layer, head)))
    points = {}
    for trace in fig.data:
        for p, x, y in zip(trace.customdata, trace.x, trace.y, strict=True):
            points[int(p)] = (x, y, trace.name.startswith("dormant"))
    stored = {}
    for metric in ("sink_mass", "output_norm_ratio", "dormant"):
        rows = _rows(reader, run, metric)
        rows = rows[rows["prompt"].notna() & (rows["layer"] == layer) & (rows["head"] == head)]
        stored[metric] = dict(zip(rows["prompt"].astype(int), rows["value"], strict=True))
    assert set(points) == set(stored["sink_mass"]) and len(points) == 10
    for p, (x, y, dormant) in points.items():
        assert x == pytest.approx(stored["sink_mass"][p])
        assert y == pytest.approx(stored["output_norm_ratio"][p])
        assert dormant == (stored["dormant"][p] == 1.0)
    (shade,) = fig.layout.shapes
    assert shade.x0 == config["dormant_sink_mass"] and shade.y1 == config["dormant_norm_ratio"]


def test_massive_activations_bar_per_layer(taxonomy):
    reader, run, _ = taxonomy
    massive = reader.store.get_run(run).summary["massive_activations"]
    fig = build_figure(reader, _spec("massive_activations", run))
    (bars,) = fig.data
    assert list(bars.x) == [m["layer"] for m in massive]
    assert np.allclose(bars.y, [m["peak"] for m in massive])
    assert [c[0] for c in bars.customdata] == [m["ratio"] for m in massive]
    assert "median" in bars.hovertemplate


def test_the_bundle_draws_the_run_figures_and_the_top_retrieval_head(taxonomy):
    reader, run, other = taxonomy
    record = reader.store.get_run(run)
    specs = dict(bundle_specs(reader, record))
    top = reader.head_grid(run, "retrieval_score").frame
    best = top.loc[top["value"].idxmax()]
    stem = f"retrieval-map_{int(best['layer'])}.{int(best['head'])}"
    assert {"kv-curve", "head-similarity", "massive", stem} <= set(specs)
    assert any(s.startswith("dormancy_") for s in specs)
    for spec in specs.values():
        assert build_figure(reader, spec).data
    others = {s for s, _ in bundle_specs(reader, reader.store.get_run(other))}
    assert not others & {"kv-curve", "head-similarity", "massive"}
    assert not any(s.startswith(("retrieval-map", "dormancy", "span")) for s in others)


def test_export_figure_writes_png(taxonomy, tmp_path, monkeypatch, capsys):
    _, run, _ = taxonomy
    for kind, extra in (("kv-curve", []), ("retrieval-map", ["--head", "1.2"])):
        out = tmp_path / f"{kind}.png"
        code, stdout, err = run_cli(
            capsys, "export", "figure", str(run), "--kind", kind, *extra,
            "--out", str(out), "--json",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(stdout)["path"] == str(out)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("kind", "which", "head", "message"),
    [
        ("kv-curve", "other", None, "has no 'kv_curve' in its summary"),
        ("massive", "other", None, "has no 'massive_activations' in its summary"),
        ("head-similarity", "other", None, "has no head_similarity.json artifact"),
        ("retrieval-map", "other", (0, 0), "has no needle prompts"),
        ("span", "other", (0, 0), "has no 'span' rows"),
        ("dormancy", "other", (0, 0), "has no 'sink_mass' rows"),
        ("retrieval-map", "taxonomy", None, "needs --head LAYER.HEAD"),
        ("span", "taxonomy", None, "needs --head LAYER.HEAD"),
        ("dormancy", "taxonomy", None, "needs --head LAYER.HEAD"),
        ("span", "taxonomy", (9, 0), "no head 9.0: the model has layers 0..1 and heads 0..3"),
    ],
)
def test_missing_data_is_a_one_line_error(taxonomy, kind, which, head, message):
    reader, run, other = taxonomy
    run_id = run if which == "taxonomy" else other
    with pytest.raises(ExportError, match=message.replace(".", r"\.")) as caught:
        run_figure(reader, run_id, kind, FigureRequest(head=head))
    assert "\n" not in str(caught.value)


def test_the_cli_says_what_is_missing_in_one_line(taxonomy, tmp_path, monkeypatch, capsys):
    _, _, other = taxonomy
    out = tmp_path / "f.png"
    code, _, err = run_cli(
        capsys, "export", "figure", str(other), "--kind", "kv-curve", "--out", str(out)
    )
    assert code != 0 and not out.exists()
    assert "no 'kv_curve' in its summary" in err and len(err.strip().splitlines()) == 1


def test_builders_name_what_is_missing():
    with pytest.raises(ValueError, match="no curves"):
        taxonomy_figures.kv_curve({"fractions": [0.0, 1.0], "curves": {}})
    with pytest.raises(ValueError, match="no massive activation rows"):
        taxonomy_figures.massive_activations([])
    frame = pd.DataFrame(
        {"metric": ["span"], "layer": [0], "head": [0], "position": [0], "value": [1.0]}
    )
    with pytest.raises(ValueError, match="no 'span' rows for head 1.1"):
        taxonomy_figures.span_profile(frame, 1, 1)
    with pytest.raises(ValueError, match="lack context, depth"):
        taxonomy_figures.retrieval_map(frame, 0, 0)
