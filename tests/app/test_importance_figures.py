"""An ``importance`` run end to end from the outside: launched with the CLI (options generated
from the config) and the Python API on the zoo's induction model; its figure kinds
(``pruning-curve``, ``importance``) draw the stored numbers, export through ``headlab export
figure`` and ``Run.export_figure`` and join the bundle; the Heads page shows its metrics (signed
effects on the diverging scale, importances on the sequential one) and its run figures; a run
without the data gets a one-line message."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import headlab
from analysis.importance.pruning import ascending_order
from app.export.errors import ExportError
from app.figures import importance as importance_figures
from app.figures.style import metric_is_signed
from app.services import heads_view
from app.services.context import WebContext
from app.services.figures import EXPORT_KINDS, KINDS, FigureRequest, bundle_specs, run_figure
from app.services.results import ResultsReader
from storage.settings import load_settings
from tests.app.cli_run import run_cli

MODEL = "zoo:induction-2l"
FIGURES = {"pruning_curve": "pruning-curve", "importance_scatter": "importance"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(lab, importance run launched by the API, an ablate run) on one store (~3 s)."""
    home = tmp_path_factory.mktemp("importance") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("HEADLAB_HOME", str(home))
    patch.delenv("HEADLAB_DB", raising=False)
    lab = headlab.Lab(home)
    lab.generate_prompts("induction-contrast", MODEL, n=10, name="ic")
    run = lab.run("importance", MODEL, "ic", curve_points=5, random_seeds=2, progress=False)
    other = lab.run("ablate", MODEL, "ic", methods=["zero"], progress=False)
    yield lab, run, other
    lab.close()
    patch.undo()


def test_the_kinds_are_declared_with_their_export_names():
    for kind, export in FIGURES.items():
        assert KINDS[kind].export_name == export and EXPORT_KINDS[export].name == kind


def test_pruning_curve_draws_every_order_from_the_summary(runs):
    lab, run, _ = runs
    curve = run.record.summary["pruning_curve"]
    fig = run.figure("pruning-curve")
    lines = {t.legendgroup: t for t in fig.data if t.xaxis == "x"}
    assert set(lines) == {"gradient", "gradient_iterative", "ablation", "random"}
    for order, trace in lines.items():
        assert np.allclose(trace.y, curve["orders"][order]["metric"]["mean"])
        assert np.allclose(trace.x, curve["fractions"])
        kept = curve["prunable"][order]
        assert trace.name.endswith(f"{100 * kept:.0f}% prunable")
    assert lines["random"].error_y.array is not None and lines["gradient"].error_y.visible is None
    loss = {t.legendgroup: t for t in fig.data if t.xaxis == "x2"}
    assert np.allclose(loss["ablation"].y, curve["orders"]["ablation"]["loss"]["mean"])
    threshold = [s for s in fig.layout.shapes if s.type == "line"]
    assert threshold and threshold[0].y0 == pytest.approx(0.9 * curve["metric_clean"])
    only_loss = run.figure("pruning-curve", metric="loss")
    assert {t.xaxis for t in only_loss.data} == {"x"}


def test_importance_scatter_is_the_stored_rows(runs):
    lab, run, _ = runs
    fig = run.figure("importance")
    grad = lab.store.head_grid(run.id, "grad_importance").frame
    abl = lab.store.head_grid(run.id, "ablation_importance").frame
    points = {
        name: (x, y) for t in fig.data for name, x, y in zip(t.customdata, t.x, t.y, strict=True)
    }
    named = {text for t in fig.data for text in t.text if text}
    top = {
        f"a{i // 4}.h{i % 4}"
        for frame in (grad, abl)
        for i in ascending_order(-torch.as_tensor(frame["value"].to_numpy()))[:5]
    }
    assert named == top  # the 5 most important by either measure are named
    assert len(points) == 8
    for layer, head, value in grad[["layer", "head", "value"]].itertuples(index=False):
        x, y = points[f"a{layer}.h{head}"]
        assert x == pytest.approx(value)
        hit = abl[(abl["layer"] == layer) & (abl["head"] == head)]
        assert y == pytest.approx(float(hit["value"].iloc[0]))
    rho = run.record.summary["spearman_grad_ablation"]
    assert f"ρ = {rho:.2f}" in fig.layout.title.text


def test_bundle_and_export(runs, tmp_path, monkeypatch, capsys):
    lab, run, other = runs
    reader = ResultsReader(lab.store)
    stems = {s for s, _ in bundle_specs(reader, reader.store.get_run(run.id))}
    assert {"pruning-curve", "importance"} <= stems
    others = {s for s, _ in bundle_specs(reader, reader.store.get_run(other.id))}
    assert not others & {"pruning-curve", "importance"}
    out = tmp_path / "curve.svg"
    assert run.export_figure(out, "pruning-curve") == out and b"<svg" in out.read_bytes()[:400]
    png = tmp_path / "scatter.png"
    code, stdout, err = run_cli(capsys, "export", "figure", str(run.id),
                            "--kind", "importance", "--out", str(png), "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["path"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("pruning-curve", "has no 'pruning_curve' in its summary"),
        ("importance", "has no grad_importance and ablation_importance"),
    ],
)
def test_a_run_without_the_data_is_a_one_line_error(runs, kind, message):
    lab, _, other = runs
    with pytest.raises(ExportError, match=message) as caught:
        run_figure(ResultsReader(lab.store), other.id, kind, FigureRequest())
    assert "\n" not in str(caught.value)


def test_builders_name_what_is_missing():
    with pytest.raises(ValueError, match="no curves"):
        importance_figures.pruning_curve({"fractions": [0.0, 1.0], "orders": {}})
    with pytest.raises(ValueError, match="needs columns head, grad, ablation"):
        importance_figures.importance_scatter(pd.DataFrame({"layer": []}))


def test_the_cli_runs_it_with_options_from_the_config(runs, monkeypatch, capsys):
    lab, run, other = runs
    monkeypatch.setenv("COLUMNS", "200")  # the help table on one line per option
    code, out, err = run_cli(capsys, "run", "importance", "--help")
    assert code == 0
    for option in ("--objective", "--ablation", "--normalise-layers", "--iterative-step",
                   "--score-run", "--score-metric", "--max-metric-drop"):  # fmt: skip
        assert option in out
    code, out, err = run_cli(capsys, "run", "importance", "--model", MODEL,
                         "--prompts", "ic", "--objective", "loss", "--normalise-layers",
                         "--orders", "gradient,random", "--curve-points", "3",
                         "--score-run", str(other.id), "--score-metric", "ablate_zero",
                         "--json")  # fmt: skip
    assert code == 0, err
    record = lab.store.get_run(json.loads(out)["id"])
    assert set(record.summary["pruning_curve"]["orders"]) == {"gradient", "random", "score"}
    grid = lab.store.head_grid(record.id, "grad_importance").frame
    norms = np.sqrt(grid.assign(v2=grid.value**2).groupby("layer").v2.sum())
    assert np.allclose(norms, 1.0)
    code, _, err = run_cli(capsys, "run", "importance", "--model", MODEL,
                       "--prompts", "ic", "--score-run", "1")  # fmt: skip
    assert code != 0 and "--score-run and --score-metric go together" in err
    assert len(err.strip().splitlines()) == 1


def test_the_heads_page_shows_its_metrics_and_run_figures(runs):
    lab, run, _ = runs
    ctx = WebContext.open(load_settings(), lab.store)
    state = heads_view.initial(ctx, run.id, None)
    assert state.metric == "grad_importance"
    assert {"grad_importance", "ablate_zero", "ablate_loss_zero", "pruned_at"} <= set(
        state.metric_options
    )
    assert [v.spec for v in state.run_figures] == [
        {"kind": k, "run": run.id} for k in ("pruning_curve", "importance_scatter")
    ]
    assert all(v.figure is not None for v in state.run_figures), [
        v.message for v in state.run_figures
    ]
    values: dict[str, Any] = {
        m: lab.store.head_grid(run.id, m).frame["value"].to_numpy()
        for m in ("grad_importance", "ablation_importance", "ablate_zero", "ablate_loss_zero")
    }
    assert not metric_is_signed("grad_importance", values["grad_importance"])
    assert not metric_is_signed("ablation_importance", values["ablation_importance"])
    assert metric_is_signed("ablate_zero", values["ablate_zero"])
    assert metric_is_signed("ablate_loss_zero", values["ablate_loss_zero"])


def test_the_launch_form_is_generated_from_the_config():
    from app.services.launch import LaunchError, build_config, form_fields

    widgets = {f.name: (f.widget, f.choices) for f in form_fields("importance")}
    assert widgets["objective"] == ("choice", ("metric", "loss"))
    assert widgets["ablation"] == ("choice", ("zero", "mean", "resample"))
    assert widgets["orders"][0] == "list" and widgets["score_run"][0] == "integer"
    form = {"model": MODEL, "prompt_set": "ic", "orders": "gradient, random", "score_run": 3.0,
            "score_metric": "ablate_zero", "normalise_layers": ["on"]}  # fmt: skip
    config = build_config("importance", form)
    assert config["orders"] == ["gradient", "random"] and config["score_run"] == 3
    assert config["normalise_layers"] is True
    with pytest.raises(LaunchError, match="--score-run and --score-metric go together"):
        build_config("importance", form | {"score_metric": ""})
