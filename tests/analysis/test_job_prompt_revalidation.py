"""A run on a prompt set validated for another model's tokenizer is checked again and refused
with the problems the set has on this model (not run on ``<unk>`` tokens or misaligned pairs);
a set validated for the run's own model runs."""

from __future__ import annotations

import pytest

from analysis.configs import parse_run_config
from analysis.jobs import JobContext, JobError
from analysis.models import load_model
from analysis.prompts.generators import generate_pairs

CODE, LETTERS = "zoo:code-6l", "zoo:induction-2l"


@pytest.fixture(scope="module")
def models():
    return {spec: load_model(spec) for spec in (CODE, LETTERS)}


def context(store, models, model_spec, prompt_set, tmp_path):
    config = parse_run_config({"kind": "heads", "model": model_spec, "prompt_set": prompt_set})
    return JobContext(
        run_id=1,
        config=config,
        store=store,
        workdir=tmp_path,
        model_loader=lambda cfg: models[cfg.model],
    )


def test_a_set_for_another_tokenizer_is_refused_with_its_problems(store, models, tmp_path):
    pairs = generate_pairs(models[CODE], "bracket-match", 4, seed=0)
    store.add_prompt_set("brackets", pairs, "generated", CODE)
    assert len(context(store, models, CODE, "brackets", tmp_path).pairs()) == 4
    with pytest.raises(JobError) as info:
        context(store, models, LETTERS, "brackets", tmp_path).pairs()
    message = str(info.value)
    assert f"validated for {CODE}" in message and f"on {LETTERS}" in message
    assert "does not know" in message and "\n" not in message
    assert f"--model {LETTERS}" in message


def test_pairs_of_unequal_length_on_the_other_tokenizer_are_named(store, models, tmp_path):
    pairs = generate_pairs(models[LETTERS], "induction", 4, seed=0)
    store.add_prompt_set("letters", pairs, "generated", LETTERS)
    assert len(context(store, models, LETTERS, "letters", tmp_path).pairs()) == 4
    with pytest.raises(JobError, match="clean is .* tokens but corrupted is"):
        context(store, models, CODE, "letters", tmp_path).pairs()
