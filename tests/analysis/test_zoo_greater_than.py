"""zoo:greater-than-3l: the SHIPPED weights have the documented mechanism."""

from __future__ import annotations

import json

import pytest
import torch

from analysis.models import load_model, model_facts
from analysis.zoo import GROUND_TRUTH_DIR, zoo_folder
from analysis.zoo.evidence import comparison_batch, ideal_cross_entropy
from analysis.zoo.probes import head_ablation, mlp_ablation


@pytest.fixture(scope="module")
def model():
    return load_model("zoo:greater-than-3l")


@pytest.fixture(scope="module")
def batch(model):
    tokens, ideal = comparison_batch(model, 32, seed=5)
    return tokens, ideal_cross_entropy(ideal)


def test_facts_have_mlps_and_three_layers(model):
    facts = model_facts(model)
    assert facts["n_layers"] == 3 and not facts["attn_only"] and facts["d_mlp"] == 256


def test_model_solves_the_task(model, batch):
    tokens, metric = batch
    with torch.no_grad():
        assert float(metric(model(tokens))) < 1.6  # ideal is about 1.46; ignoring YY gives 1.9


def test_layer0_heads_move_the_digits(model, batch):
    tokens, _ = batch
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    pattern = cache["pattern", 0][:, :, -1]  # batch head k_pos, from '>'
    assert pattern[:, 0, -3].mean() > 0.8 and pattern[:, 1, -3].mean() > 0.8  # Y1
    assert pattern[:, 3, -2].mean() > 0.8  # Y2


def test_ablations_match_ground_truth(model, batch):
    tokens, metric = batch
    heads = head_ablation(model, tokens, metric)
    mlps = mlp_ablation(model, tokens, metric)
    truth = json.loads(
        (zoo_folder("greater-than-3l") / GROUND_TRUTH_DIR / "greater-than.json").read_text()
    )
    assert set(truth["nodes"]) == {"a0.h0", "a0.h1", "a0.h3", "m0"}
    for layer in range(3):
        for head in range(4):
            if f"a{layer}.h{head}" in truth["nodes"]:
                assert heads[layer, head] > 0.01
            else:
                assert heads[layer, head].abs() < 0.01
    assert mlps[0] > 0.2 and mlps[0] > 5 * mlps[1:].abs().max()


def test_greater_than_generator_is_meaningful_for_this_model(model):
    from analysis.prompt_batch import build_pair_batch
    from analysis.prompts.generators import generate_pairs

    pairs = generate_pairs(model, "greater-than", 16, seed=2)
    batch = build_pair_batch(model, pairs)
    rows = torch.arange(len(pairs))
    with torch.no_grad():
        clean = model(batch.clean)[rows, batch.last]
        corrupt = model(batch.corrupted)[rows, batch.last]
    clean_diff = clean[rows, batch.correct] - clean[rows, batch.incorrect]
    corrupt_diff = corrupt[rows, batch.correct] - corrupt[rows, batch.incorrect]
    assert (clean_diff > 0).all() and clean_diff.mean() > corrupt_diff.mean() + 2
