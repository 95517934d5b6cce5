"""Seed a real store with runs of every kind the pages show, through the store API only.

Runs are enqueued, claimed and finished exactly as a worker would (``finish_run`` with a
``RunOutput``); artifacts are real files: ``patterns.safetensors`` written with
``safetensors.numpy`` (float16 [layer, head, q, k] per prompt, rows summing to one under a
causal mask), ``tokens.json``, SAE parquet tables and contexts. Used by the browser tests and
``bench/ui.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import save_file

from storage.records import (
    ArtifactIn,
    EdgeIn,
    HeadResultIn,
    NodeIn,
    PairIn,
    RunOutput,
    SweepChild,
)
from storage.store import ResultStore

MODEL = "zoo:induction-2l"
PROMPTS = [
    ["<bos>", "a", "b", "c", "d", "a", "b", "c"],
    ["<bos>", "x", "y", "z", "x", "y"],
    ["<bos>", "p", "q", "r", "s", "t", "p", "q", "r"],
]


@dataclass
class Seeded:
    heads: int = 0
    dla: int = 0
    patch: int = 0
    circuits: list[int] = field(default_factory=list)
    sae: int = 0
    failed: int = 0
    queued: int = 0
    big: int = 0
    compare: int = 0
    sweep: int = 0


def finished(
    store: ResultStore,
    kind: str,
    output: RunOutput,
    prompt_set_id: int | None,
    config: dict | None = None,
    model: str = MODEL,
) -> int:
    config = {"kind": kind, "model": model, **(config or {})}
    run = store.enqueue_run(kind, config, model, prompt_set_id, {"headlab": "test"}, "seed")
    store.claim_run(run.id, "seed-worker")
    store.heartbeat(run.id, "seed-worker", 0.5, "halfway")
    return store.finish_run(run.id, output).id


def job_run(
    store: ResultStore, workdir: Path, kind: str, task: str, n: int, name: str, **fields: object
) -> int:
    """A real run of ``kind`` (its job on the zoo's induction model, on ``n`` generated ``task``
    pairs stored as set ``name``) committed to ``store``."""
    from analysis.configs import parse_run_config
    from analysis.job_table import job_for
    from analysis.jobs import JobContext
    from analysis.models import load_model
    from analysis.prompts.generators import generate_pairs

    model = load_model(MODEL)
    ps = store.add_prompt_set(name, generate_pairs(model, task, n, 0), "test", MODEL)
    config = {"kind": kind, "model": MODEL, "prompt_set": name, **fields}
    ctx = JobContext(0, parse_run_config(config), store, workdir, lambda c: model)
    return finished(store, kind, job_for(kind)(ctx), ps.id, config)


def causal_patterns(n_layers: int, n_heads: int, n: int, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(size=(n_layers, n_heads, n, n))
    logits = np.where(np.tril(np.ones((n, n), dtype=bool)), logits, -np.inf)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float16)


def pattern_artifacts(
    workdir: Path, n_layers: int, n_heads: int, prompts: list[list[str]], seed: int = 0
) -> list[ArtifactIn]:
    rng = np.random.default_rng(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"prompt{i}": causal_patterns(n_layers, n_heads, len(p), rng) for i, p in enumerate(prompts)
    }
    save_file(tensors, str(workdir / "patterns.safetensors"))
    (workdir / "tokens.json").write_text(json.dumps({"prompts": prompts}))
    return [
        ArtifactIn("patterns.safetensors", "patterns", str(workdir / "patterns.safetensors")),
        ArtifactIn("tokens.json", "tokens", str(workdir / "tokens.json"), "application/json"),
    ]


def head_rows(
    metric: str, n_layers: int, n_heads: int, rng: np.random.Generator, signed: bool = False
) -> list[HeadResultIn]:
    values = rng.normal(size=(n_layers, n_heads)) if signed else rng.random((n_layers, n_heads))
    return [
        HeadResultIn(metric, la, h, float(values[la, h]))
        for la in range(n_layers)
        for h in range(n_heads)
    ]


def seed_heads(
    store: ResultStore, workdir: Path, ps: int, n_layers: int = 2, n_heads: int = 4, seed: int = 0
) -> int:
    rng = np.random.default_rng(seed)
    rows = []
    for metric in ("induction_score", "prev_token_score", "entropy", "bos_mass"):
        rows += head_rows(metric, n_layers, n_heads, rng)
    arts = pattern_artifacts(workdir / f"heads{seed}", n_layers, n_heads, PROMPTS, seed)
    return finished(store, "heads", RunOutput(head_results=rows, artifacts=arts), ps)


def seed_patch(store: ResultStore, ps: int) -> int:
    rng = np.random.default_rng(2)
    rows = head_rows("patch_z", 2, 4, rng, signed=True)
    rows += [
        HeadResultIn("patch_resid", la, None, float(rng.normal()), position=p)
        for la in range(2)
        for p in range(8)
    ]
    rows += [
        HeadResultIn("patch_z", la, h, float(rng.normal()), position=p)
        for la in range(2)
        for h in range(4)
        for p in range(8)
    ]
    return finished(store, "patch", RunOutput(head_results=rows), ps)


def circuit_output(method: str, seed: int) -> RunOutput:
    rng = np.random.default_rng(seed)
    heads = [f"a{la}.h{h}" for la in range(2) for h in range(4)]
    edges = [EdgeIn("input", f"{t}<{c}>", float(rng.normal()), False) for t in heads for c in "qkv"]
    edges += [
        EdgeIn(s, f"{t}<{c}>", float(rng.normal()), False)
        for s in heads[:4]
        for t in heads[4:]
        for c in "qkv"
    ]
    edges += [EdgeIn(s, "logits", float(rng.normal()), False) for s in heads]
    edges += [EdgeIn("a0.h1", "a1.h2<k>", 3.0, True), EdgeIn("a1.h2", "logits", 2.5, True)]
    nodes = [
        NodeIn(n, int(n[1]), int(n[4]), float(rng.random()), n in ("a0.h1", "a1.h2")) for n in heads
    ]
    k = list(range(1, 11))
    summary = {
        "faithfulness_curve": {"k": k, "faithfulness": [1 - 0.8**i for i in k], "area": 0.7},
        "roc": {
            "edge": {"fpr": [0, 0.1, 1], "tpr": [0, 0.9, 1], "auc": 0.95},
            "node": {"fpr": [0, 0.2, 1], "tpr": [0, 1, 1], "auc": 0.9},
        },
    }
    return RunOutput(edges=edges, nodes=nodes, summary=summary)


def sae_output(workdir: Path) -> RunOutput:
    rng = np.random.default_rng(5)
    workdir.mkdir(parents=True, exist_ok=True)
    n_feat = 40
    shares = rng.dirichlet(np.ones(4), size=n_feat)
    feats = pd.DataFrame(
        {
            "feature": range(n_feat),
            "frequency": rng.random(n_feat),
            "mean_act": rng.random(n_feat),
            "max_act": rng.random(n_feat) * 5,
            "dominant_head": [f"1.{int(s.argmax())}" for s in shares],
            "dominant_share": shares.max(axis=1),
            "n_heads_50": (shares > 0.5).sum(axis=1),
        }
    )
    feats.to_parquet(workdir / "sae_features.parquet")
    pd.DataFrame(
        [
            {"feature": f, "layer": 1, "head": h, "share": float(shares[f, h])}
            for f in range(n_feat)
            for h in range(4)
        ]
    ).to_parquet(workdir / "sae_head_shares.parquet")
    tokens = ["<bos>", "a", "b", "c", "a", "b"]
    contexts = {
        str(f): [{"tokens": tokens, "acts": list(rng.random(6)), "max": 1.0}] * 2
        for f in range(n_feat)
    }
    (workdir / "sae_top_contexts.json").write_text(json.dumps(contexts))
    pd.DataFrame(
        [
            {
                "feature": f,
                "context": 0,
                "source_pos": p,
                "layer": 1,
                "head": h,
                "value": float(rng.normal()),
            }
            for f in range(n_feat)
            for p in range(6)
            for h in range(4)
        ]
    ).to_parquet(workdir / "sae_dfa.parquet")
    arts = [
        ArtifactIn(n, "sae", str(workdir / n))
        for n in (
            "sae_features.parquet",
            "sae_head_shares.parquet",
            "sae_top_contexts.json",
            "sae_dfa.parquet",
        )
    ]
    steps = list(range(0, 1000, 100))
    curve = {
        "step": steps,
        "mse": [1 / (1 + s) for s in steps],
        "l0": [20 - s / 100 for s in steps],
        "dead_fraction": [0.01] * 10,
        "explained_variance": [0.5 + s / 2000 for s in steps],
    }
    rows = head_rows("sae_features_dominated", 2, 4, rng)
    return RunOutput(head_results=rows, artifacts=arts, summary={"training_curve": curve})


def seed_sweep(
    store: ResultStore, prompt_set: str = "demo", seeds: tuple[int, ...] = (0, 1)
) -> int:
    """A finished heads sweep over ``seed`` on ``prompt_set`` (one induction_score grid per run)."""
    ps = store.get_prompt_set(prompt_set).id
    spec = {"kind": "heads", "models": [MODEL], "prompt_sets": [prompt_set], "fixed": {}}
    spec["vary"] = {"seed": list(seeds)}
    children = [
        SweepChild({"kind": "heads", "model": MODEL, "prompt_set": prompt_set, "seed": seed},
                   MODEL, ps, {"headlab": "test"}, "seed")
        for seed in seeds
    ]  # fmt: skip
    sweep, runs = store.enqueue_sweep(f"{prompt_set}-seeds", "heads", spec, children)
    rng = np.random.default_rng(7)
    for run in runs:
        store.claim_run(run.id, "seed-worker")
        rows = head_rows("induction_score", 2, 4, rng)
        store.finish_run(run.id, RunOutput(head_results=rows, summary={"n_prompts": 4}))
    return sweep.id


def seed_all(store: ResultStore, workdir: Path) -> Seeded:
    """A small store with one run of every page's kind, a failed and a queued run."""
    store.add_model("induction", MODEL, {"n_layers": 2, "n_heads": 4})
    pairs = [PairIn(" ".join(p[1:]), " ".join(p[1:]).upper(), p[-1], "z") for p in PROMPTS]
    ps = store.add_prompt_set("demo", pairs, "test", MODEL).id
    out = Seeded()
    out.heads = seed_heads(store, workdir, ps)
    out.compare = seed_heads(store, workdir, ps, seed=1)
    rng = np.random.default_rng(1)
    out.dla = finished(store, "dla", RunOutput(head_results=head_rows("dla", 2, 4, rng, True)), ps)
    out.patch = seed_patch(store, ps)
    for i, method in enumerate(("eap", "acdc")):
        out.circuits.append(
            finished(store, "circuit", circuit_output(method, i), ps, {"method": method})
        )
    out.sae = finished(store, "sae-train", sae_output(workdir / "sae"), ps)
    failed = store.enqueue_run("heads", {"kind": "heads", "model": MODEL}, MODEL, ps, {}, "seed")
    store.claim_run(failed.id, "seed-worker")
    store.fail_run(failed.id, "JobError: prompt 2 is longer than the model context (n_ctx=64)")
    out.failed = failed.id
    out.queued = store.enqueue_run("dla", {"kind": "dla", "model": MODEL}, MODEL, ps, {}, "seed").id
    return out


def seed_big(
    store: ResultStore, workdir: Path, n_runs: int = 1000, n_layers: int = 80, n_heads: int = 64
) -> int:
    """``n_runs`` finished runs, the last with an ``n_layers × n_heads`` grid and patterns."""
    ps = store.add_prompt_set("bench", [PairIn("a b", "c d", "x", "y")], "bench", None).id
    for _ in range(n_runs - 1):
        finished(store, "throughput", RunOutput(summary={"tokens_per_s": 1.0}), None)
    rng = np.random.default_rng(0)
    rows = []
    for metric in ("induction_score", "prev_token_score"):
        rows += head_rows(metric, n_layers, n_heads, rng)
    prompts = [["<bos>"] + [f"t{i}" for i in range(19)] for _ in range(2)]
    arts = pattern_artifacts(workdir / "big", n_layers, n_heads, prompts)
    return finished(
        store, "heads", RunOutput(head_results=rows, artifacts=arts), ps, model="hf:big-80x64"
    )


TAXONOMY_SUMMARY = {
    "kv_curve": {
        "context": 64, "fractions": [0.0, 0.5, 1.0], "kv_heads": 8, "sink": 1, "window": 8,
        "kv_saved": [0.0, 0.43, 0.86], "kv_bytes_per_token": [1024.0, 584.0, 144.0],
        "streamed_kv_heads": [0, 4, 8], "bytes_per_value": 4, "query_heads_per_kv_head": 1,
        "curves": {
            ranking: {
                "loss": {"mean": [2.78, 2.78 + d, 3.28], "std": [0.0, d / 3, 0.0]},
                "logit_diff": {"mean": [8.9, 9.1 - 5 * d, 6.6], "std": [0.0, d, 0.0]},
                "needle_accuracy": {"mean": [1.0, 1.0 - d, 0.62], "std": [0.0, d / 2, 0.0]},
            }
            for ranking, d in (("duo", 0.0), ("razor", 0.0), ("random", 0.12))
        },
    },
    "massive_activations": [
        {"layer": 0, "dimension": 45, "position": 0, "peak": 1.5, "ratio": 5.6},
        {"layer": 1, "dimension": 15, "position": 0, "peak": 22.9, "ratio": 13.0},
    ],
    "needle_prompts": [{"context": c, "depth": d} for c in (10, 27) for d in (0.0, 0.5, 1.0)],
    "streaming": {"ranking": "kl", "sink": 1, "window": 8, "streaming_fraction": 0.5},
}  # fmt: skip


def seed_taxonomy(store: ResultStore, ps: int, n_layers: int = 2, n_heads: int = 4) -> int:
    """A finished ``taxonomy`` run of store rows only (the job's metric names and summary keys,
    made-up values; no artifacts): per-head, per-prompt, per-position and per-layer rows."""
    rng = np.random.default_rng(7)
    rows = []
    for metric in ("retrieval_score", "streaming_kl", "span", "sink_mass", "dormancy_rate"):
        rows += head_rows(metric, n_layers, n_heads, rng)
    for prompt in range(len(TAXONOMY_SUMMARY["needle_prompts"])):
        for metric in ("retrieval_score", "dormant", "output_norm_ratio"):
            rows += [
                HeadResultIn(metric, la, h, float(rng.random()), prompt=prompt)
                for la in range(n_layers)
                for h in range(n_heads)
            ]
    rows += [
        HeadResultIn("span", la, h, float(rng.random() * (q + 1)), position=q)
        for la in range(n_layers) for h in range(n_heads) for q in range(12)
    ]  # fmt: skip
    for metric in ("massive_peak", "massive_ratio"):
        rows += [HeadResultIn(metric, la, None, float(rng.random() * 10)) for la in range(n_layers)]
    output = RunOutput(head_results=rows, summary=TAXONOMY_SUMMARY)
    return finished(store, "taxonomy", output, ps)
