"""The figure kinds of a ``lens`` run, drawn from real runs on the zoo's induction model: each
builds from the stored artifact alone and shows the stored tokens and values, exports through
``headlab export figure`` and ``Run.figure``, joins the run's bundle; what cannot be drawn is
a one-line message naming what is missing."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from app.export.errors import ExportError
from app.figures import lens as lens_figures
from app.services.figures import (
    EXPORT_KINDS,
    FigureRequest,
    build_figure,
    bundle_specs,
    run_figure,
)
from app.services.results import ResultsReader
from tests.app.cli_run import run_cli
from tests.app.lens_run import lens_runs

LENS_KINDS = {"ov_lens": "ov-lens", "logit_lens_tokens": "head-lens",
              "trained_lens_tokens": "trained-lens"}  # fmt: skip
HEAD = (1, 2)


@pytest.fixture(scope="module")
def lens(tmp_path_factory):
    """(lab, reader, trained run id, plain run id) on one store for the module."""
    home = tmp_path_factory.mktemp("lens-figures") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("HEADLAB_HOME", str(home))
    patch.delenv("HEADLAB_DB", raising=False)
    lab, trained, plain = lens_runs(home)
    yield lab, ResultsReader(lab.store), trained, plain
    lab.close()
    patch.undo()


def stored(reader: ResultsReader, run: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    lens = load_file(str(reader.store.open_artifact(run, "lens.safetensors").path))
    with open(reader.store.open_artifact(run, "tokens.json").path, encoding="utf-8") as fh:
        return lens, json.load(fh)


def spec(kind: str, run: int, prompt: int = 0) -> dict[str, Any]:
    return {"kind": kind, "run": run, "layer": HEAD[0], "head": HEAD[1], "prompt": prompt}


def test_the_kinds_are_declared_with_their_export_names():
    for kind, name in LENS_KINDS.items():
        assert EXPORT_KINDS[name].name == kind


def test_ov_lens_shows_the_stored_tokens_and_logits(lens):
    _, reader, run, _ = lens
    data, tokens = stored(reader, run)
    fig = build_figure(reader, spec("ov_lens", run, prompt=1))
    bars, table = fig.data
    vocab = tokens["vocab"]
    layer, head = HEAD
    want = [vocab[str(i)] for i in data["ov.mean.top_ids"][layer, head]]
    want += [vocab[str(i)] for i in data["ov.mean.bottom_ids"][layer, head]][::-1]
    assert list(bars.customdata) == want
    top = data["ov.mean.top_logits"][layer, head]
    assert np.allclose(bars.x[: len(top)], top)
    # the table: the distinct tokens of prompt 1, in order, each with its own top tokens
    ids = list(dict.fromkeys(t for t in tokens["prompt_ids"][1] if t in data["ov.sources"]))
    assert len(table.z) == len(ids)
    row = list(data["ov.sources"]).index(ids[0])
    assert np.allclose(table.z[0], data["ov.source.top_logits"][layer, head, row])
    assert list(table.text[0]) == [
        vocab[str(i)] for i in data["ov.source.top_ids"][layer, head, row]
    ]
    copy = reader.head_grid(run, "ov_copy_score").frame
    value = copy[(copy["layer"] == layer) & (copy["head"] == head)]["value"].iloc[0]
    assert f"copy score {value:.2f}" in fig.layout.title.text


@pytest.mark.parametrize("kind", ["logit_lens_tokens", "trained_lens_tokens"])
def test_lens_tokens_show_each_positions_top_tokens(lens, kind):
    _, reader, run, _ = lens
    data, tokens = stored(reader, run)
    prefix = "logit_lens" if kind == "logit_lens_tokens" else "trained_lens"
    fig = build_figure(reader, spec(kind, run, prompt=2))
    (table,) = fig.data
    ids = data[f"{prefix}.prompt2.ids"][HEAD[0], HEAD[1]]  # [position, k]
    probs = data[f"{prefix}.prompt2.probs"][HEAD[0], HEAD[1]]
    assert len(table.z) == len(tokens["prompts"][2]) == ids.shape[0]
    assert np.allclose(table.z, probs)
    assert list(table.text[-1]) == [tokens["vocab"][str(i)] for i in ids[-1]]
    assert list(fig.layout.yaxis.ticktext)[1].endswith(tokens["prompts"][2][1])


def test_the_bundle_draws_the_top_copying_heads_lenses(lens):
    _, reader, trained, plain = lens
    grid = reader.head_grid(trained, "ov_copy_score").frame
    best = grid.loc[grid["value"].idxmax()]
    head = f"{int(best['layer'])}.{int(best['head'])}"
    specs = dict(bundle_specs(reader, reader.store.get_run(trained)))
    assert {f"ov-lens_{head}", f"head-lens_{head}", f"trained-lens_{head}"} <= set(specs)
    for one in specs.values():
        assert build_figure(reader, one).data
    plain_specs = {s for s, _ in bundle_specs(reader, reader.store.get_run(plain))}
    assert not any(s.startswith("trained-lens") for s in plain_specs)
    assert any(s.startswith("ov-lens") for s in plain_specs)


def test_export_figure_and_run_figure(lens, tmp_path, monkeypatch, capsys):
    lab, _, run, _ = lens
    out = tmp_path / "lens.png"
    code, stdout, err = run_cli(
        capsys, "export", "figure", str(run), "--kind", "head-lens", "--head",
        "1.2", "--prompt", "1", "--out", str(out), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["path"] == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = lab.get_run(run).figure("ov-lens", head=(1, 0))
    assert fig.layout.title.text.startswith("head 1.0 · OV lens")


@pytest.mark.parametrize(
    ("kind", "which", "head", "prompt", "message"),
    [
        ("trained-lens", "plain", (0, 0), 0, "has no trained lens (launch it with --train)"),
        ("ov-lens", "trained", None, 0, "needs --head LAYER.HEAD"),
        ("head-lens", "trained", (5, 0), 0, "no head 5.0: the model has layers 0..1"),
        ("head-lens", "trained", (0, 0), 99, "has prompts 0..5; --prompt 99 is not one"),
    ],
)
def test_missing_data_is_a_one_line_error(lens, kind, which, head, prompt, message):
    _, reader, trained, plain = lens
    run_id = trained if which == "trained" else plain
    with pytest.raises(ExportError, match=message.replace(".", r"\.").replace("(", r"\(")
                       .replace(")", r"\)")) as caught:  # fmt: skip
        run_figure(reader, run_id, kind, FigureRequest(head=head, prompt=prompt))
    assert "\n" not in str(caught.value)


def test_a_run_of_another_kind_has_no_lens(lens, monkeypatch, capsys, tmp_path):
    lab, reader, _, _ = lens
    heads = lab.run("heads", "zoo:induction-2l", "ind", max_prompts=2, progress=False)
    with pytest.raises(ExportError, match="has no lens.safetensors artifact"):
        run_figure(reader, heads.record.id, "ov-lens", FigureRequest(head=(0, 0)))
    out = tmp_path / "f.png"
    code, _, err = run_cli(capsys, "export", "figure", str(heads.record.id), "--kind",
                       "ov-lens", "--head", "0.0", "--out", str(out))  # fmt: skip
    assert code != 0 and not out.exists()
    assert "lens figures come from a lens run" in err and len(err.strip().splitlines()) == 1


def test_builders_name_what_is_missing():
    empty = lens_figures.OvLensView(0, 0, "vocabulary", [], [], [], [], [])
    with pytest.raises(ValueError, match="no OV lens tokens for head 0.0"):
        lens_figures.ov_lens(empty)
    view = lens_figures.LensTokensView(0, 0, "head logit lens", ["a", "b"], [["x"]], [[0.5]])
    with pytest.raises(ValueError, match="1 token rows and 1 value rows for 2"):
        lens_figures.lens_tokens(view)
