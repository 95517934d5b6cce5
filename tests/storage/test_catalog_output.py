"""A run that creates a prompt set or a model commits it with its results and FINISHED at once."""

from __future__ import annotations

import pytest

from storage.errors import Conflict, InvalidInput
from storage.records import ModelIn, PairIn, PromptSetIn, RunOutput, RunStatus
from tests.storage.store_fixtures import enqueue, head_rows

PAIRS = [PairIn("abcab", "abdab", "c", "d"), PairIn("xyx", "xzx", "y", "z", meta={"k": 1})]


def running(store, kind: str = "prompts-import") -> int:
    run_id = enqueue(store, kind)
    store.claim_run(run_id, "w1")
    return run_id


def test_finish_run_stores_the_prompt_set_and_the_model(store):
    run_id = running(store)
    output = RunOutput(
        head_results=head_rows(),
        summary={"prompt_set": "gen"},
        prompt_set=PromptSetIn("gen", PAIRS, "generate:induction", "zoo:induction-2l", {"n": 2}),
        model=ModelIn("ind", "zoo:induction-2l", {"n_layers": 2}),
    )
    run = store.finish_run(run_id, output)
    assert run.status is RunStatus.FINISHED
    record = store.get_prompt_set("gen")
    assert (record.n_pairs, record.source, record.model_spec, record.meta) == (
        2,
        "generate:induction",
        "zoo:induction-2l",
        {"n": 2},
    )
    stored = store.get_pairs(record.id)
    assert [(p.clean, p.correct, p.meta) for p in stored] == [
        ("abcab", "c", {}),
        ("xyx", "y", {"k": 1}),
    ]
    assert store.get_model("ind").facts == {"n_layers": 2}
    assert len(store.head_results(run_id)) == 8


def test_duplicate_prompt_set_name_writes_nothing(store):
    store.add_prompt_set("taken", PAIRS[:1], "test", None)
    run_id = running(store)
    output = RunOutput(
        head_results=head_rows(),
        prompt_set=PromptSetIn("taken", PAIRS, "import:x.csv"),
        model=ModelIn("new-model", "zoo:induction-2l"),
    )
    with pytest.raises(Conflict, match="prompt set named 'taken' already exists"):
        store.finish_run(run_id, output)
    run = store.get_run(run_id)
    assert run.status is RunStatus.RUNNING  # the worker then fails it with the message
    assert store.count_result_rows(run_id) == 0
    assert store.get_prompt_set("taken").n_pairs == 1  # the existing set is untouched
    assert [m.name for m in store.list_models()] == []


def test_duplicate_model_name_conflicts_unless_replace(store):
    store.add_model("m", "zoo:induction-2l", {"old": True})
    run_id = running(store, "model-add")
    with pytest.raises(Conflict, match="model named 'm' already exists"):
        store.finish_run(run_id, RunOutput(model=ModelIn("m", "zoo:induction-2l", {"new": 1})))
    assert store.get_model("m").facts == {"old": True}
    assert store.get_run(run_id).status is RunStatus.RUNNING
    output = RunOutput(model=ModelIn("m", "zoo:induction-2l", {"new": 1}, replace=True))
    assert store.finish_run(run_id, output).status is RunStatus.FINISHED
    assert store.get_model("m").facts == {"new": 1}


def test_empty_prompt_set_is_refused_and_nothing_written(store):
    run_id = running(store)
    with pytest.raises(InvalidInput, match="has no pairs"):
        store.finish_run(run_id, RunOutput(prompt_set=PromptSetIn("empty", [], "import:e.csv")))
    assert store.get_run(run_id).status is RunStatus.RUNNING
    assert store.list_prompt_sets() == []
