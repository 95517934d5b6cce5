"""zoo:code-6l: the SHIPPED real-text model, its tokenizer, its tasks, the head types its
MECHANISM.md names, and ground truths that belong to a task."""

from __future__ import annotations

import json

import pytest
import torch

from analysis.circuits.ground_truth import GroundTruthError, load_ground_truth
from analysis.models import load_model
from analysis.prompts.code_tasks import CODE_GENERATORS
from analysis.prompts.generators import generate_pairs
from analysis.zoo import CONFIG_FILE, GROUND_TRUTH_DIR, zoo_folder
from analysis.zoo.code_corpus import corpus_files, corpus_hash
from analysis.zoo.code_evidence import CLEAR, head_types

SPEC = "zoo:code-6l"
FOLDER = zoo_folder("code-6l")


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    return load_model(SPEC)


@pytest.fixture(scope="module")
def types(model):
    return head_types(model)


def test_metadata_records_the_corpus_and_the_validation_loss():
    training = json.loads((FOLDER / CONFIG_FILE).read_text())["training"]
    corpus = training["corpus"]
    assert corpus["file_list_sha256"] == corpus_hash(corpus_files())  # same stdlib as trained on
    assert corpus["python_version"].startswith("3.11")
    assert 0 < training["validation_bits_per_byte"] < 1.2
    assert training["validation_loss"] == pytest.approx(2.48, abs=0.01)


def test_the_tokenizer_is_the_corpus_bpe_with_bos_first(model):
    tokens = model.to_tokens("def f(self):\n    return self.x")
    assert int(tokens[0, 0]) == model.tokenizer.bos_token_id
    assert model.cfg.d_vocab == 4096
    assert model.cfg.n_layers == 6 and model.cfg.n_heads == 8


@pytest.mark.parametrize("task", sorted(CODE_GENERATORS))
def test_each_code_task_has_equal_length_pairs_the_model_solves(model, task):
    pairs = generate_pairs(model, task, 8, seed=3)
    for pair in pairs:
        clean = model.to_tokens(pair.clean)
        corrupted = model.to_tokens(pair.corrupted)
        assert clean.shape == corrupted.shape
        assert len(model.to_tokens(pair.correct, prepend_bos=False)[0]) == 1
    correct = [model.to_single_token(p.correct) for p in pairs]
    incorrect = [model.to_single_token(p.incorrect) for p in pairs]
    diffs = []
    for pair, good, bad in zip(pairs, correct, incorrect, strict=True):
        with torch.no_grad():
            logits = model(model.to_tokens(pair.clean))[0, -1]
        diffs.append(float(logits[good] - logits[bad]))
    assert sum(diffs) / len(diffs) > 0  # the model prefers the right answer on average


def test_head_types_match_mechanism_md(types):
    members = types["clear_members"]
    # One clear previous-token head, on code and on repeated random tokens alike.
    assert members["code/prev_token_score"] == ["a4.h3"]
    assert members["repeated_tokens/prev_token_score"] == ["a4.h3"]
    # No head is a clear induction, duplicate-token, sink, copying or successor head.
    for key, heads in members.items():
        if not key.endswith("prev_token_score"):
            assert heads == [], key
    scores = types["scores"]
    assert max(max(row) for row in scores["repeated_tokens"]["induction_score"]) < 0.1
    assert set(CLEAR) >= {"prev_token_score", "induction_score", "bos_mass"}


@pytest.mark.parametrize("task", sorted(CODE_GENERATORS))
def test_every_task_has_its_own_exact_ground_truth(task):
    path = FOLDER / GROUND_TRUTH_DIR / f"{task}.json"
    data = json.loads(path.read_text())
    assert data["task"] == task and data["model"] == SPEC
    assert "exact edge patching" in data["source"]
    truth = load_ground_truth(None, SPEC, task)
    assert truth is not None and len(truth.edges) == data["evidence"]["n_positive"] > 0
    other = next(t for t in CODE_GENERATORS if t != task)
    with pytest.raises(GroundTruthError, match=f"holds for task '{task}'"):
        load_ground_truth(str(path), SPEC, other)
