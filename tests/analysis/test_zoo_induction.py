"""zoo:induction-2l: the SHIPPED weights have the documented circuit (detect_head + ablations)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from analysis.models import load_model
from analysis.zoo import GROUND_TRUTH_DIR, WEIGHTS_FILE, zoo_folder
from analysis.zoo.evidence import _repeat_batch, detect_scores, masked_loss_metric, repeat_prompts
from analysis.zoo.probes import head_ablation, path_ablation
from analysis.zoo.tokenizer import load_char_tokenizer
from analysis.zoo.train import load_recipe, train_native

FOLDER = zoo_folder("induction-2l")


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    return load_model("zoo:induction-2l")


@pytest.fixture(scope="module")
def scores(model):
    return {k: torch.tensor(v) for k, v in detect_scores(model, repeat_prompts(n=10)).items()}


def test_weights_load_exactly(model):
    saved = load_file(str(FOLDER / WEIGHTS_FILE))
    fresh = load_model("zoo:induction-2l")  # compatibility mode rewrites weights; check raw boot
    from analysis.zoo.checkpoint import load_zoo_bridge

    raw = load_zoo_bridge(FOLDER)
    state = raw.state_dict()
    assert set(state) == set(saved)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key
    assert fresh.tokenizer is not None


def test_tokenizer_reloads_from_folder_with_bos(model):
    tok = load_char_tokenizer(FOLDER / "tokenizer")
    assert tok.name_or_path and tok.bos_token == "<bos>"
    tokens = model.to_tokens("abcab")[0].tolist()
    assert tokens[0] == tok.bos_token_id and len(tokens) == 6
    assert model.to_string(model.to_tokens("hello, world")[0, 1:]) == "hello, world"


def test_previous_token_head_in_layer_0(scores):
    prev = scores["previous_token_head"]
    assert prev[0, 2] >= 0.3
    others = torch.cat([prev[0, :2], prev[0, 3:], prev[1]])
    assert others.max() < prev[0, 2] / 3  # clearly lower


def test_induction_heads_in_layer_1(scores):
    ind = scores["induction_head"]
    assert (ind[1] >= 0.3).all()
    assert ind[0].max() < ind[1].min() / 3


def test_ground_truth_matches_detected_heads(scores):
    truth = json.loads((FOLDER / GROUND_TRUTH_DIR / "induction-contrast.json").read_text())
    assert truth["model"] == "zoo:induction-2l"
    assert set(truth["nodes"]) == {"a0.h2", "a0.h3", "a1.h0", "a1.h1", "a1.h2", "a1.h3"}
    assert ["input", "a0.h2<q>"] in truth["positional_edges"]
    assert ["a0.h2", "a1.h3<k>"] in truth["edges"] and ["a1.h0", "logits"] in truth["edges"]
    assert truth["source"] and truth["evidence"]


def test_ablations_support_the_circuit(model):
    tokens, mask = _repeat_batch(model, 16, 1)
    metric = masked_loss_metric(tokens, mask)
    effects = head_ablation(model, tokens, metric)
    assert effects[0, 2] > 1.0  # the previous-token head is necessary
    assert effects[0, [0, 1, 3]].max() < 0.2
    k_and_q = path_ablation(model, tokens, metric, "a0.h2", (1, None), "q+k")
    other = path_ablation(model, tokens, metric, "a0.h0", (1, None), "q+k")
    value = path_ablation(model, tokens, metric, "input", (1, None), "v")
    assert k_and_q > 1.0 and value > 1.0 and abs(other) < 0.2


def test_training_is_deterministic():
    recipe = load_recipe("induction-2l")
    first, _ = train_native(recipe, steps=3)
    second, _ = train_native(recipe, steps=3)
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
