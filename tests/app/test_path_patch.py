"""A ``path-patch`` run end to end on zoo:induction-2l: the known mechanism (the previous-token
head a0.h2 feeds the induction heads' queries and keys, the two-back head a0.h3 their keys
only), fast = exact on the whole grid, the CLI's options and one-line errors, the Heads page's
grid figure and default metric, the launch form and the export of the grid."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headlab
from app.api.errors import HeadlabError
from app.export.errors import ExportError
from app.services import heads_view
from app.services.context import WebContext
from app.services.figures import KINDS, page_figure
from storage.settings import load_settings
from tests.app.cli_run import run_cli

MODEL = "zoo:induction-2l"
INDUCTION = ["a1.h0", "a1.h1", "a1.h2", "a1.h3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(lab, fast run, exact run) into the induction heads and the logits (~6 s)."""
    home = tmp_path_factory.mktemp("path-patch") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("HEADLAB_HOME", str(home))
    patch.delenv("HEADLAB_DB", raising=False)
    lab = headlab.Lab(home)
    lab.generate_prompts("induction-contrast", MODEL, n=16, name="ic")
    fast = lab.run("path-patch", MODEL, "ic", receivers=[*INDUCTION, "logits"], progress=False)
    exact = lab.run("path-patch", MODEL, "ic", receivers=[*INDUCTION, "logits"],
                    method="exact", progress=False)  # fmt: skip
    yield lab, fast, exact
    lab.close()
    patch.undo()


def _grid(lab, run, metric):
    frame = lab.store.head_grid(run.id, metric).frame
    return {f"a{r.layer}.h{r.head}": r.value for r in frame.itertuples()}


def test_previous_token_head_feeds_the_induction_heads_keys(runs):
    lab, fast, _ = runs
    q, k, v = (_grid(lab, fast, f"path_{c}") for c in "qkv")
    assert k["a0.h2"] < -0.25 and k["a0.h3"] < -0.25  # both key paths carry the match
    assert q["a0.h2"] < -0.25 and abs(q["a0.h3"]) < 0.05  # the two-back head: keys only
    assert max(abs(k[h]) for h in ("a0.h0", "a0.h1")) < 0.1
    assert max(abs(v[h]) for h in ("a0.h0", "a0.h1", "a0.h2", "a0.h3")) < abs(k["a0.h2"]) / 2
    strongest = fast.record.summary["top_paths"][0]
    assert strongest["sender"] == "a0.h2" and strongest["receivers"] in ("qkv", "k")
    logits = _grid(lab, fast, "path_logits")
    assert min(logits[h] for h in INDUCTION) < -0.15  # layer-1 heads write the answer
    assert set(logits) == {f"a{layer}.h{h}" for layer in (0, 1) for h in range(4)}
    assert "a1.h0" not in k  # no path from a layer-1 head into a layer-1 key


def test_fast_equals_exact_on_the_grid(runs):
    _, fast, exact = runs
    a, b = fast.record.summary["grid"], exact.record.summary["grid"]
    assert a["senders"] == b["senders"] and a["receivers"] == b["receivers"]
    assert a["receivers"][:3] == ["a1.h0<q>", "a1.h0<k>", "a1.h0<v>"]
    za, zb = (np.array(g["values"], dtype=float) for g in (a, b))
    assert np.isnan(za[4:, :-1]).all() and np.array_equal(np.isnan(za), np.isnan(zb))
    assert np.nanmax(np.abs(za - zb)) < 1e-4
    assert fast.record.summary["cost"]["model_calls"] < exact.record.summary["cost"]["model_calls"]


def test_the_cli_runs_it_and_refuses_bad_heads_in_one_line(runs, monkeypatch, capsys):
    lab, _, _ = runs
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(capsys, "run", "path-patch", "--help")
    assert code == 0
    for option in ("--senders", "--receivers", "--channels", "--direction", "--method", "--grid"):
        assert option in out
    code, out, err = run_cli(capsys, "run", "path-patch", "--model", MODEL, "--prompts", "ic",
                             "--senders", "a0.h2,a0.h3", "--receivers", "a1.h1",
                             "--channels", "k", "--direction", "denoising", "--json")  # fmt: skip
    assert code == 0, err
    record = lab.store.get_run(json.loads(out)["id"])
    assert set(lab.store.result_tables(record.id).head_metrics()) >= {"path_k", "path_k_delta"}
    assert record.summary["grid"]["receivers"] == ["a1.h1<k>"]
    assert all(row[0] > 0.05 for row in record.summary["grid"]["values"])  # restores the clean
    bad = {
        ("--senders", "a5.h0"): "sender a5.h0 is not a head of this model",
        ("--senders", "a1.h0", "--receivers", "a0.h2"): "a0.h2 is not after sender a1.h0",
        ("--receivers", "mlp0"): "'mlp0' is not a head name",
        ("--channels", "z"): "channels must be a non-empty list from q, k, v",
    }
    for args, message in bad.items():
        code, _, err = run_cli(capsys, "run", "path-patch", "--model", MODEL, "--prompts", "ic",
                               *args)  # fmt: skip
        assert code != 0 and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_heads_page_shows_the_grid(runs):
    lab, fast, _ = runs
    ctx = WebContext.open(load_settings(), lab.store)
    state = heads_view.initial(ctx, fast.id, None)
    assert state.metric == "path_logits"
    assert {"path_q", "path_k", "path_v", "path_qkv", "path_k_delta"} <= set(state.metric_options)
    assert [v.spec for v in state.run_figures] == [{"kind": "path_grid", "run": fast.id}]
    figure = state.run_figures[0].figure
    assert figure is not None, state.run_figures[0].message
    fig = page_figure(ctx.reader, {"kind": "path_grid", "run": fast.id, "metric": "delta"})
    assert fig["data"][0]["colorbar"]["title"]["text"] == "metric change"
    assert KINDS["path_grid"].export_name == "path-grid"
    assert list(fig["data"][0]["y"][:2]) == ["a0.h0", "a0.h1"]


def test_a_run_without_a_grid_says_so(runs):
    lab, _, _ = runs
    other = lab.run("path-patch", MODEL, "ic", senders=["a0.h2"], grid=False, progress=False)
    assert other.record.summary["grid"] is None
    with pytest.raises(HeadlabError, match="has no sender × receiver 'grid'"):
        other.figure("path-grid")
    ctx = WebContext.open(load_settings(), lab.store)
    with pytest.raises(ExportError, match="comes from a path-patch run with --grid"):
        page_figure(ctx.reader, {"kind": "path_grid", "run": other.id})


def test_the_launch_form_is_generated_from_the_config():
    from app.services.launch import LaunchError, build_config, form_fields

    widgets = {f.name: (f.widget, f.choices) for f in form_fields("path-patch")}
    assert widgets["senders"][0] == "list" and widgets["receivers"][0] == "list"
    assert widgets["direction"] == ("choice", ("noising", "denoising"))
    assert widgets["method"] == ("choice", ("fast", "exact"))
    form = {"model": MODEL, "prompt_set": "ic", "senders": "a0.h2, a0.h3",
            "receivers": "a1.h0, logits", "channels": "k"}  # fmt: skip
    config = build_config("path-patch", form)
    assert config["senders"] == ["a0.h2", "a0.h3"] and config["receivers"] == ["a1.h0", "logits"]
    with pytest.raises(LaunchError, match="is not after sender"):
        build_config("path-patch", form | {"receivers": "a0.h1"})
