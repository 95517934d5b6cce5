"""The heads/dla/patch/ablate jobs on the zoo induction model, against a real SQLite store."""

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from analysis.configs import parse_run_config
from analysis.job_table import job_for
from analysis.jobs import Cancelled, JobContext, JobError
from storage.records import PairIn

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def zoo_model():
    from analysis.models import load_model

    return load_model("zoo:induction-2l")


def induction_pairs(n: int = 6, seed: int = 0) -> list[PairIn]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        word = rng.sample(LETTERS, 7)
        prefix, answer, wrong = "".join(word[:5]), word[5], word[6]
        clean = prefix + answer + prefix
        pairs.append(PairIn(clean, prefix + wrong + prefix, answer, wrong))
    return pairs


def run(kind, store, tmp_path, model, progress=None, **fields):
    cfg = parse_run_config({"kind": kind, "model": "zoo:induction-2l", **fields})
    seen = []

    def on_progress(f, msg):
        seen.append(f)
        return progress(f) if progress else False

    ctx = JobContext(1, cfg, store, tmp_path, lambda c: model, on_progress)
    out = job_for(kind)(ctx)
    assert seen and seen[-1] == 1.0
    return out


def grid(out, metric):
    rows = [r for r in out.head_results if r.metric == metric and r.prompt is None]
    g = torch.full((2, 4), float("nan"))
    for r in rows:
        g[r.layer, r.head] = r.value
    return g


def test_heads_run_shows_previous_token_and_induction_heads(store, tmp_path, zoo_model):
    store.add_prompt_set("ind", induction_pairs(), "test", "zoo:induction-2l")
    out = run("heads", store, tmp_path, zoo_model, prompt_set="ind", repeated_sequences=4)
    prev, ind = grid(out, "prev_token_score"), grid(out, "induction_score")
    assert prev[0].argmax().item() == 2 and prev[0, 2] > 0.5  # a0.h2 (ground truth)
    assert ind[1].max() > 0.3 and ind[1].max() > 3 * ind[0].max()
    metrics = {r.metric for r in out.head_results}
    assert {"entropy", "mean_distance", "bos_mass", "local_mass", "duplicate_token_score",
            "ov_copying_score", "successor_score"} <= metrics  # fmt: skip
    assert all(torch.isfinite(torch.tensor(r.value)) for r in out.head_results)
    files = {a.name: a.path for a in out.artifacts}
    patterns = load_file(files["patterns.safetensors"])
    tokens = json.loads(Path(files["tokens.json"]).read_text())["prompts"]
    assert len(patterns) == len(tokens) == 10
    assert patterns["prompt0"].shape == (2, 4, len(tokens[0]), len(tokens[0]))
    assert patterns["prompt0"].dtype == torch.float16


def test_patch_run_finds_the_circuit_and_reports_attribution(store, tmp_path, zoo_model):
    store.add_prompt_set("ind", induction_pairs(), "test", "zoo:induction-2l")
    out = run("patch", store, tmp_path, zoo_model, prompt_set="ind", sites=["z", "resid"])
    z = grid(out, "patch_z")
    assert z[1].max() > 0.2  # induction heads restore the clean answer
    assert -1 <= out.summary["attribution_correlation"] <= 1
    assert out.summary["replay"] == "from patched layer, positions from the patch on"
    resid = [r for r in out.head_results if r.metric == "patch_resid"]
    assert {r.position for r in resid} == set(range(12)) and all(r.head is None for r in resid)
    at_answer = [r.value for r in resid if r.layer == 0 and r.position == 6]
    assert at_answer == [pytest.approx(1.0, abs=1e-4)]  # the corrupted token itself


def test_dla_and_ablate_runs(store, tmp_path, zoo_model):
    store.add_prompt_set("ind", induction_pairs(), "test", "zoo:induction-2l")
    dla = run("dla", store, tmp_path, zoo_model, prompt_set="ind")
    lens = sorted((r.layer, r.value) for r in dla.head_results if r.metric == "logit_lens")
    assert lens[-1][1] == pytest.approx(dla.summary["metric_clean"])
    assert len([r for r in dla.head_results if r.metric == "dla" and r.prompt == 5]) == 8
    # the stored components (heads, MLPs, embeddings, biases) sum to the mean logit difference
    parts = ("dla", "dla_mlp", "dla_embed", "dla_pos_embed", "dla_biases")
    total = sum(r.value for r in dla.head_results if r.metric in parts and r.prompt is None)
    assert total == pytest.approx(dla.summary["metric_clean"], abs=1e-4)
    abl = run("ablate", store, tmp_path, zoo_model, prompt_set="ind")
    zero = grid(abl, "ablate_zero")
    assert zero[1].min() < -0.5  # removing an induction head hurts the logit difference
    assert {r.metric for r in abl.head_results} == {"ablate_zero", "ablate_mean", "ablate_resample"}


def test_bad_input_is_a_job_error(store, tmp_path, zoo_model):
    same = [PairIn("abcab", "abcab", "c", "d")]
    store.add_prompt_set("same", same, "test", None)
    with pytest.raises(JobError, match="metric logit_diff is the same .* pairs 0 have"):
        run("patch", store, tmp_path, zoo_model, prompt_set="same")
    store.add_prompt_set("ind", induction_pairs(2), "test", None)
    with pytest.raises(JobError, match="position 40 is beyond prompt 0's length of 12"):
        run("patch", store, tmp_path, zoo_model, prompt_set="ind", positions="each",
            only_positions=[40])  # fmt: skip
    bad = dict(induction_pairs(1)[0].__dict__, correct="ab")
    store.add_prompt_set("multi", [PairIn(**bad)], "test", None)
    with pytest.raises(JobError, match="pair 0: the correct answer 'ab' is 2 tokens"):
        run("dla", store, tmp_path, zoo_model, prompt_set="multi")


def test_cancel_stops_the_job(store, tmp_path, zoo_model):
    store.add_prompt_set("ind", induction_pairs(2), "test", None)
    with pytest.raises(Cancelled):
        run("patch", store, tmp_path, zoo_model, progress=lambda f: f > 0.3, prompt_set="ind",
            positions="each")  # fmt: skip
