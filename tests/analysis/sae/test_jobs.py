"""The SAE jobs end to end against a real SQLite store (the model is a tiny random bridge)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.configs import ConfigError, parse_run_config
from analysis.jobs import JobContext, JobError
from analysis.sae.job import sae_circuit_job, sae_eval_job, sae_train_job
from storage.records import PairIn, RunStatus

MODEL = "hf:test/random"
SMALL = {
    "d_sae": 32,
    "k": 4,
    "training_tokens": 8192,
    "batch_tokens": 512,
    "context_size": 32,
    "eval_tokens": 512,
    "top_contexts": 3,
    "dfa_contexts": 2,
}


def _run(store, model, workdir: Path, kind: str, job, prompt_set=None, **fields):
    config = parse_run_config({"kind": kind, "model": MODEL, "prompt_set": prompt_set, **fields})
    ps = store.get_prompt_set(prompt_set).id if prompt_set else None
    run = store.enqueue_run(kind, config.model_dump(mode="json"), MODEL, ps, {}, "test")
    store.claim_run(run.id, "tester")
    ctx = JobContext(
        run_id=run.id, config=config, store=store, workdir=workdir, model_loader=lambda cfg: model
    )
    output = job(ctx)
    return store.finish_run(run.id, output), output


@pytest.fixture
def train_run(store, model, tmp_path):
    return _run(
        store,
        model,
        tmp_path / "w1",
        "sae-train",
        sae_train_job,
        source="repeat",
        layers=[0, -1],
        **SMALL,
    )


def test_sae_train_stores_rows_artifacts_and_curves(store, train_run):
    run, _ = train_run
    assert run.status == RunStatus.FINISHED
    names = {a.name for a in store.artifacts(run.id)}
    assert {
        "sae/L0/cfg.json",
        "sae/L1/sae_weights.safetensors",
        "sae_features.parquet",
        "sae_head_shares.parquet",
        "sae_top_contexts.json",
        "sae_dfa.parquet",
    } <= names
    rows = store.head_results(run.id)
    assert set(rows["metric"]) == {
        "sae_features_dominated",
        "sae_polysemanticity",
        "sae_activity_share",
    }
    assert len(rows) == 3 * 2 * 4 and not rows["value"].isna().any()
    share = rows[rows["metric"] == "sae_activity_share"].groupby("layer")["value"].sum()
    assert all(abs(v - 1) < 1e-5 for v in share)
    curve = run.summary["training_curve"]
    assert set(curve) >= {"step", "mse", "l0", "dead_fraction", "explained_variance"}
    assert set(run.summary["training_curves"]) == {"0", "1"}
    assert run.summary["layers"] == [0, 1] and run.summary["eval_held_out"] is True
    ev = run.summary["evaluation"]["1"]
    assert abs(ev["loss_sae_error"] - ev["loss_clean"]) < 1e-5


def test_sae_train_feature_tables_agree(store, train_run):
    run, _ = train_run
    feats = pd.read_parquet(store.get_artifact(run.id, "sae_features.parquet").path)
    shares = pd.read_parquet(store.get_artifact(run.id, "sae_head_shares.parquet").path)
    assert len(feats) == 64 and feats["feature"].tolist() == list(range(64))
    assert (feats["sae_feature"] == feats["feature"] % 32).all()
    assert (feats["layer"] == feats["feature"] // 32).all()
    sums = shares.groupby("feature")["share"].sum()
    assert ((sums - 1).abs() < 1e-5).all()
    top = shares.loc[shares.groupby("feature")["share"].idxmax()].set_index("feature")
    dominant = top["layer"].astype(str) + "." + top["head"].astype(str)
    assert (feats.set_index("feature")["dominant_head"] == dominant).all()
    contexts = json.loads(
        Path(store.get_artifact(run.id, "sae_top_contexts.json").path).read_text()
    )
    live = feats[feats["frequency"] > 0]["feature"]
    assert set(contexts) == {str(f) for f in live}
    dfa = pd.read_parquet(store.get_artifact(run.id, "sae_dfa.parquet").path)
    f = int(dfa["feature"].iloc[0])
    n_tokens = len(contexts[str(f)][0]["tokens"])
    assert dfa[(dfa["feature"] == f) & (dfa["context"] == 0)]["source_pos"].max() < n_tokens


def test_sae_eval_of_a_stored_sae_reproduces_the_training_evaluation(
    store, model, train_run, tmp_path
):
    run, _ = train_run
    again, _ = _run(
        store,
        model,
        tmp_path / "w2",
        "sae-eval",
        sae_eval_job,
        source="repeat",
        sae_run=run.id,
        sae_layer=1,
        **{k: SMALL[k] for k in ("context_size", "eval_tokens", "top_contexts", "dfa_contexts")},
    )
    assert again.status == RunStatus.FINISHED
    before, after = run.summary["evaluation"]["1"], again.summary["evaluation"]["1"]
    for key in ("explained_variance", "l0", "loss_sae", "loss_clean", "dead_fraction"):
        assert math.isclose(before[key], after[key], rel_tol=1e-9, abs_tol=1e-12), key
    with pytest.raises(JobError, match="has SAEs for layers \\[0, 1\\], not 5"):
        _run(store, model, tmp_path / "w3", "sae-eval", sae_eval_job, sae_run=run.id, sae_layer=5)


def test_sae_eval_errors_name_the_problem(store, model, tmp_path):
    with pytest.raises(JobError, match="does not exist"):
        _run(
            store,
            model,
            tmp_path / "w",
            "sae-eval",
            sae_eval_job,
            source="repeat",
            sae_path=str(tmp_path / "missing"),
        )
    with pytest.raises(JobError, match="source=zoo needs a zoo model"):
        _run(store, model, tmp_path / "w", "sae-train", sae_train_job, source="zoo")
    with pytest.raises(JobError, match="layer 7 does not exist"):
        _run(store, model, tmp_path / "w", "sae-train", sae_train_job, layers=[7])


def test_configs_refuse_incomplete_input():
    with pytest.raises(ConfigError, match="needs text_path"):
        parse_run_config({"kind": "sae-train", "model": MODEL, "source": "text"})
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_run_config({"kind": "sae-eval", "model": MODEL, "sae_run": 1, "sae_path": "x"})
    with pytest.raises(ConfigError, match="go together"):
        parse_run_config({"kind": "sae-eval", "model": MODEL, "sae_release": "r"})
    with pytest.raises(ConfigError, match="needs a prompt set"):
        parse_run_config({"kind": "sae-circuit", "model": MODEL})
    with pytest.raises(ConfigError, match="k=9 exceeds d_sae=8"):
        parse_run_config({"kind": "sae-train", "model": MODEL, "d_sae": 8, "k": 9})


def test_sae_circuit_stores_nodes_edges_and_evaluation(store, model, tmp_path):
    import random

    rng = random.Random(0)
    pairs = []
    for _ in range(6):
        block = rng.sample("abcdefghijklmnopqrstuvwxyz", 6)
        clean = "".join(block + block[:3])
        corrupted = "".join(block + rng.sample("abcdefghijklmnopqrstuvwxyz", 3))
        pairs.append(PairIn(clean, corrupted, block[3], "z" if block[3] != "z" else "y"))
    store.add_prompt_set("repeats", pairs, "test", MODEL)
    run, out = _run(
        store,
        model,
        tmp_path / "w",
        "sae-circuit",
        sae_circuit_job,
        prompt_set="repeats",
        steps=20,
        n_codes=4,
        ground_truth=None,
    )
    assert run.status == RunStatus.FINISHED
    nodes = store.nodes(run.id)
    heads = nodes[nodes["name"].str.startswith("a")]
    assert len(heads) == 8 and heads["score"].between(0, 1).all()
    assert len(store.edges(run.id)) == run.summary["n_edges"]
    assert "faithfulness_curve" in run.summary and run.summary["method"] == "sae-codes"
    in_circuit = set(heads[heads["in_circuit"].astype(bool)]["name"])
    assert in_circuit == set(run.summary["circuit_heads"])


def test_sae_train_reads_an_uploaded_text_by_reference(store, model, tmp_path):
    text = ("def add(a, b):\n    return a + b\n\n" * 200).encode()
    ref = store.uploads.save(text, "corpus.py")
    run, output = _run(
        store, model, tmp_path / "w", "sae-train", sae_train_job, source="text",
        text_path=ref, layers=[0], **SMALL,
    )  # fmt: skip
    assert run.status == RunStatus.FINISHED
    store.uploads.resolve(ref).write_bytes(text + b"#")  # altered after upload
    with pytest.raises(JobError, match="corrupt"):
        _run(
            store, model, tmp_path / "w2", "sae-train", sae_train_job, source="text",
            text_path=ref, layers=[0], **SMALL,
        )  # fmt: skip
