"""``headlab export figure|data|bundle`` against a real SQLite store with a seeded run.

The run is created the way a worker would (enqueue → claim → finish with a RunOutput of head
rows, per-position rows, circuit edges/nodes, summary curves and artifact files); no analysis
runs. Commands are invoked in-process through ``app.cli.main`` so that they share one Chromium;
one test runs the real console entry point in a subprocess.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file

from storage.records import ArtifactIn, EdgeIn, HeadResultIn, NodeIn, PairIn, RunOutput
from tests.app.cli_run import run_cli

from .test_export import pdf_page_size, png_info

N_LAYERS, N_HEADS, N_POS = 2, 4, 5
TOKENS = ["<bos>", "A", "B", "A", "B"]


def _artifacts(folder: Path) -> list[ArtifactIn]:
    rng = np.random.default_rng(0)
    pattern = np.tril(rng.random((N_LAYERS, N_HEADS, N_POS, N_POS)))
    pattern /= pattern.sum(-1, keepdims=True)
    save_file({"prompt0": pattern.astype(np.float16)}, str(folder / "patterns.safetensors"))
    (folder / "tokens.json").write_text(json.dumps({"prompts": [TOKENS]}))
    shares = pd.DataFrame(
        {"feature": 5, "layer": [0, 1, 1], "head": [0, 2, 3], "share": [0.5, 0.3, 0.2]}
    )
    shares.to_parquet(folder / "sae_head_shares.parquet")
    contexts = {"5": [{"tokens": TOKENS, "acts": [0, 1, 0, 2, 0.5], "max": 2}]}
    (folder / "sae_top_contexts.json").write_text(json.dumps(contexts))
    names = [
        "patterns.safetensors",
        "tokens.json",
        "sae_head_shares.parquet",
        "sae_top_contexts.json",
    ]
    return [ArtifactIn(name, "file", str(folder / name)) for name in names]


def _output(folder: Path) -> RunOutput:
    rows = [
        HeadResultIn("dla", la, h, (la - 0.5) * (h - 1.5))
        for la in range(N_LAYERS)
        for h in range(N_HEADS)
    ]
    rows += [
        HeadResultIn("induction_score", la, h, la * h / 3)
        for la in range(N_LAYERS)
        for h in range(N_HEADS)
    ]
    rows += [
        HeadResultIn("patch_resid", la, None, p - la, position=p)
        for la in range(N_LAYERS)
        for p in range(N_POS)
    ]
    edges = [
        EdgeIn("input", "a0.h1<k>", 0.4, True),
        EdgeIn("a0.h1", "a1.h2<k>", 1.0, True),
        EdgeIn("a1.h2", "logits", 1.5, True),
        EdgeIn("input", "a1.h0<q>", 0.01, False),
    ]
    nodes = [NodeIn("a0.h1", 0, 1, 0.4, True), NodeIn("a1.h2", 1, 2, 1.5, True)]
    summary = {
        "faithfulness_curve": {"k": [0, 1, 2, 3], "faithfulness": [0, 0.5, 0.9, 1], "area": 0.6},
        "roc": {"edge": {"fpr": [0, 0.5, 1], "tpr": [0, 1, 1], "auc": 0.75}},
        "training_curve": {"step": [0, 1, 2], "mse": [1, 0.5, 0.3], "l0": [5, 4, 3]},
    }
    return RunOutput(
        head_results=rows, artifacts=_artifacts(folder), edges=edges, nodes=nodes, summary=summary
    )


@pytest.fixture
def run_id(store, tmp_path: Path) -> int:
    pairs = [PairIn("A B A", "A C A", " B", " C"), PairIn("X Y X", "X Z X", " Y", " Z")]
    prompt_set = store.add_prompt_set("abab", pairs, source="test", model_spec=None)
    config = {"kind": "patch", "model": "zoo:induction-2l", "seed": 7, "prompt_set": "abab"}
    run = store.enqueue_run(
        "patch", config, "zoo:induction-2l", prompt_set.id, {"headlab": "0.1.0"}, "git:abc123"
    )
    claimed = store.claim_next_run("w1")
    assert claimed is not None and claimed.id == run.id
    folder = tmp_path / "job"
    folder.mkdir()
    store.finish_run(run.id, _output(folder))
    return run.id


FIGURE_ARGS = {
    "heatmap": ["--metric", "dla"],
    "position": ["--metric", "patch_resid"],
    "pattern": ["--head", "1.2", "--prompt", "0"],
    "circuit": [],
    "faithfulness": [],
    "roc": [],
    "sae-training": [],
    "sae-heads": ["--feature", "5"],
    "sae-contexts": ["--feature", "5"],
}


def test_every_figure_kind_from_a_stored_run(run_id, tmp_path, monkeypatch, capsys):
    for kind, extra in FIGURE_ARGS.items():
        out = tmp_path / f"{kind}.pdf"
        code, stdout, err = run_cli(
            capsys,
            "export",
            "figure",
            str(run_id),
            "--kind",
            kind,
            *extra,
            "--format",
            "pdf",
            "--preset",
            "text",
            "--out",
            str(out),
            "--json",
        )
        assert code == 0, (kind, err)
        assert json.loads(stdout)["path"] == str(out)
        data = out.read_bytes()
        assert data.startswith(b"%PDF-") and b"/FontFile" in data
        assert pdf_page_size(data)[0] == pytest.approx(6.75 * 72, abs=0.01)
    code, _, err = run_cli(
        capsys,
        "export",
        "figure",
        str(run_id),
        "--kind",
        "heatmap",
        "--metric",
        "induction_score",
        "--format",
        "png",
        "--width-in",
        "2",
        "--dpi",
        "200",
        "--out",
        str(tmp_path / "h.png"),
    )
    assert code == 0, err
    assert png_info((tmp_path / "h.png").read_bytes())[:1] == (400,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--kind", "heatmap", "--metric", "nope"],
            "no per-head metric 'nope'; choose one of: dla, induction_score",
        ),
        (["--kind", "heatmap"], "several per-head metrics; pass --metric"),
        (["--kind", "pattern", "--head", "7.0"], "no head 7.0: the model has layers 0..1"),
        (["--kind", "pattern", "--head", "x"], "--head must be LAYER.HEAD"),
        (["--kind", "pattern", "--head", "0.0", "--prompt", "3"], "no pattern for --prompt 3"),
        (["--kind", "sae-heads", "--feature", "9"], "no data for feature 9; try: 5"),
        (["--kind", "bogus"], "unknown figure kind 'bogus'; choose one of: heatmap"),
        (["--kind", "roc", "--format", "gif"], "unknown format 'gif'; choose one of: svg, pdf"),
        (["--kind", "roc", "--preset", "a4"], "unknown preset 'a4'; choose one of: column"),
    ],
)
def test_bad_figure_requests(run_id, tmp_path, monkeypatch, capsys, args, message):
    out = tmp_path / "f.pdf" if "--format" not in args else tmp_path / "f"
    code, _, err = run_cli(capsys, "export", "figure", str(run_id), *args, "--out", str(out))
    assert code != 0
    assert message in err
    assert not out.exists()


def test_unknown_run_and_bad_output_folder(run_id, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(
        capsys,
        "export",
        "figure",
        "999",
        "--kind",
        "roc",
        "--out",
        str(tmp_path / "f.pdf"),
    )
    assert code == 1 and "999" in err  # not found: a domain error, exit 1
    code, _, err = run_cli(
        capsys,
        "export",
        "data",
        str(run_id),
        "--format",
        "csv",
        "--out",
        str(tmp_path / "nope" / "d.csv"),
    )
    assert code != 0 and "does not exist; create it first" in err
    code, _, err = run_cli(
        capsys, "export", "bundle", str(run_id), "--out", str(tmp_path / "b.tar")
    )
    assert code != 0 and "should end in .zip" in err


def test_data_export_in_each_format(run_id, tmp_path, monkeypatch, capsys):
    for fmt in ("csv", "parquet", "json"):
        out = tmp_path / f"d.{fmt}"
        code, _, err = run_cli(capsys, "export", "data", str(run_id), "--out", str(out))
        assert code == 0, err
    csv = pd.read_csv(tmp_path / "d.csv")
    parquet = pd.read_parquet(tmp_path / "d.parquet")
    assert len(csv) == len(parquet) == 2 * N_LAYERS * N_HEADS + N_LAYERS * N_POS
    assert list(csv.columns) == ["metric", "layer", "head", "position", "prompt", "value"]
    assert "1.0" not in (tmp_path / "d.csv").read_text().split("\n")[1].split(",")[1:3]
    dla = parquet[parquet["metric"] == "dla"].set_index(["layer", "head"])["value"]
    assert dla.loc[(1, 3)] == pytest.approx(0.5 * 1.5)
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["run"]["config"]["seed"] == 7 and len(doc["tables"]["edges"]) == 4
    assert doc["tables"]["head_results"][0]["prompt"] is None
    code, _, err = run_cli(
        capsys,
        "export",
        "data",
        str(run_id),
        "--format",
        "xlsx",
        "--out",
        str(tmp_path / "d.xlsx"),
    )
    assert code != 0 and "choose one of: csv, parquet, json" in err


def test_bundle_has_figures_data_and_manifest(run_id, store, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run.zip"
    code, _, err = run_cli(
        capsys, "export", "bundle", str(run_id), "--out", str(out), "--formats", "pdf"
    )
    assert code == 0, err
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        for entry in manifest["files"]:
            import hashlib

            assert hashlib.sha256(zf.read(entry["path"])).hexdigest() == entry["sha256"]
        heads = pd.read_parquet(io.BytesIO(zf.read("data/head_results.parquet")))
        prompts = json.loads(zf.read("data/prompt_set.json"))
    figures = {n for n in names if n.startswith("figures/")}
    assert {
        "figures/heatmap_dla.pdf",
        "figures/heatmap_induction_score.pdf",
        "figures/position_patch_resid.pdf",
        "figures/circuit.pdf",
        "figures/faithfulness.pdf",
        "figures/roc.pdf",
        "figures/sae-training.pdf",
    } <= figures
    assert any(re.match(r"figures/pattern_\d\.\d_prompt0\.pdf", n) for n in figures)
    assert {
        "data/head_results.csv",
        "data/edges.csv",
        "data/run.json",
        "artifacts/patterns.safetensors",
    } <= names
    run = store.get_run(run_id)
    assert manifest["run"]["config"] == run.config and manifest["seeds"] == {"seed": 7}
    assert manifest["model"]["spec"] == "zoo:induction-2l"
    ps = store.get_prompt_set("abab")
    assert manifest["prompt_set"]["content_hash"] == ps.content_hash
    assert manifest["versions"]["run"] == {"headlab": "0.1.0"}
    assert "plotly" in manifest["versions"]["export"]
    assert manifest["code_version"] == "git:abc123"
    assert manifest["timestamps"]["finished_at"] and manifest["timestamps"]["exported_at"]
    assert manifest["figures_failed"] == []
    assert len(heads) == len(store.head_results(run_id)) and len(prompts["pairs"]) == 2


def test_console_entry_point_without_chromium(run_id, headlab_env, tmp_path):
    env = {**headlab_env, "PATH": str(tmp_path)}
    env.pop("BROWSER_PATH", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "export",
            "figure",
            str(run_id),
            "--kind",
            "roc",
            "--format",
            "svg",
            "--out",
            str(tmp_path / "roc.svg"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "apt-get install chromium" in proc.stderr
    assert not (tmp_path / "roc.svg").exists()


def test_a_corrupt_artifact_is_a_one_line_error(run_id, store, tmp_path, monkeypatch, capsys):
    path = Path(store.get_artifact(run_id, "patterns.safetensors").path)
    size = path.stat().st_size
    path.unlink()
    path.write_bytes(np.random.default_rng(1).bytes(size))
    out = tmp_path / "p.pdf"
    args = ["export", "figure", str(run_id), "--kind", "pattern", *FIGURE_ARGS["pattern"]]
    code, _, err = run_cli(capsys, *args, "--out", str(out))
    assert code == 1 and "'patterns.safetensors' is corrupt" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and not out.exists()
    bundle = tmp_path / "b.zip"
    code, _, err = run_cli(capsys, "export", "bundle", str(run_id), "--out", str(bundle))
    assert code == 1 and "corrupt" in err and not bundle.exists()
