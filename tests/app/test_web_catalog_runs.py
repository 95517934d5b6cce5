"""The web side of catalog runs (torch-free): what is checked before enqueueing, what the worker
receives, and how a failed import's error text becomes one table row per offending row."""

from __future__ import annotations

import base64
import json

import pytest

from analysis.configs.catalog import row_error_text
from app.services import catalog_runs
from app.services.launch import LaunchError
from storage.records import PairIn

MODEL = "zoo:induction-2l"


def upload(text: str, mime: str = "text/csv") -> str:
    return f"data:{mime};base64," + base64.b64encode(text.encode()).decode()


def test_import_is_checked_then_enqueued_as_canonical_jsonl(store):
    bad = upload("clean,corrupted,correct,incorrect\na,b,,y\n")
    run, errors = catalog_runs.enqueue_import(store, "s", MODEL, "p.csv", bad)
    assert run is None and errors[0].row == 1 and errors[0].column == "correct"
    run, errors = catalog_runs.enqueue_import(store, "s", None, "p.csv", bad)
    assert run is None and errors[0].column == "model"
    good = upload('clean,corrupted,correct,incorrect,meta\nab,ac,#3,b,"{""k"": 1}"\nxy,xz,y,z,\n')
    run, errors = catalog_runs.enqueue_import(store, None, MODEL, "dir/p.csv", good)
    assert errors == [] and run is not None and run.kind == "prompts-import"
    assert run.config["name"] == "p" and run.config["filename"] == "p.csv"
    assert run.config["format"] == "jsonl" and run.prompt_set_id is None
    rows = [json.loads(line) for line in run.config["content"].splitlines()]
    assert rows[0] == {"clean": "ab", "corrupted": "ac", "correct": "#3", "incorrect": "b",
                       "meta": {"k": 1}}  # fmt: skip
    assert rows[1]["correct"] == "y" and rows[1]["meta"] == {}
    assert store.count_runs() == 1


def test_import_refuses_a_taken_name_before_enqueueing(store):
    store.add_prompt_set("taken", [PairIn("ab", "ac", "a", "b")], "test", None)
    good = upload("clean,corrupted,correct,incorrect\nab,ac,a,b\n")
    run, errors = catalog_runs.enqueue_import(store, "taken", MODEL, "p.csv", good)
    assert run is None and "already exists" in errors[0].message
    assert store.count_runs() == 0


def test_failed_import_rows_pair_each_error_with_its_cells(store):
    content = "\n".join(
        json.dumps({"clean": c, "corrupted": c, "correct": a, "incorrect": "z"})
        for c, a in (("ab", "a"), ("abc", "xy"), ("abcd", "q"))
    )
    config = {"kind": "prompts-import", "model": MODEL, "name": "n", "content": content}
    run = store.enqueue_run("prompts-import", config, MODEL, None, {}, "test")
    store.claim_run(run.id, "w")
    problems = ["row 2: correct answer 'xy' is 2 tokens", "row 3 (line 4): prompt too long"]
    store.fail_run(run.id, row_error_text("p.jsonl", problems, 3))
    rows = catalog_runs.import_error_rows(store, run.id)
    assert [(r["row"], r["clean"], r["correct"], r["error"]) for r in rows] == [
        (2, "abc", "xy", "correct answer 'xy' is 2 tokens"),
        (3, "abcd", "q", "prompt too long"),
    ]
    state = catalog_runs.run_state(store, run.id)
    assert not state.active and state.error.startswith("p.jsonl: 2 problem(s) in 3 row(s)")


def test_generate_and_model_add_name_checks(store):
    with pytest.raises(LaunchError) as info:
        catalog_runs.enqueue_generate(store, {"task": "nope", "n": 0, "model": MODEL})
    assert set(info.value.fields) == {"task", "n"}
    run = catalog_runs.enqueue_generate(store, {"task": "induction", "n": 4, "model": MODEL})
    assert run.config["name"] == "induction-induction-2l-4-s0"
    store.add_prompt_set("induction-induction-2l-4-s0", [PairIn("a", "b", "a", "b")], "t", None)
    with pytest.raises(LaunchError, match="already exists"):
        catalog_runs.enqueue_generate(store, {"task": "induction", "n": 4, "model": MODEL})
    store.add_model("induction-2l", MODEL, {})
    with pytest.raises(LaunchError, match="tick replace"):
        catalog_runs.enqueue_model_add(store, None, MODEL, False)
    assert catalog_runs.enqueue_model_add(store, None, MODEL, True).config["replace"] is True
    with pytest.raises(LaunchError) as info:
        catalog_runs.enqueue_model_add(store, "bad name", "hf:gpt2 x", False)
    assert set(info.value.fields) == {"name", "model"}
    with pytest.raises(LaunchError) as info:  # a server folder is refused before it is looked at
        catalog_runs.enqueue_model_add(store, "bad name", "hf:/no/such/folder", False)
    assert set(info.value.fields) == {"model"}
    assert "headlab models add" in info.value.fields["model"]
    assert store.count_runs() == 2


def test_needle_generate_form_round_trip(store):
    needle = {"needle_length": 5, "needle_query": 2, "contexts": "32, 48", "depths": "0, 0.5,1"}
    form = catalog_runs.generate_form("needle", 8, 1, MODEL, None, needle)
    assert form["contexts"] == ["32", "48"] and form["depths"] == ["0", "0.5", "1"]
    run = catalog_runs.enqueue_generate(store, form)
    config = run.config
    assert config["task"] == "needle" and config["name"] == "needle-induction-2l-8-s1"
    assert (config["needle_length"], config["needle_query"]) == (5, 2)
    assert config["contexts"] == [32, 48] and config["depths"] == [0.0, 0.5, 1.0]
    for depths, word in (("0, x", "depths"), ("0.5, 1.5", "[0, 1]")):
        bad = catalog_runs.generate_form("needle", 8, 2, MODEL, None, {**needle, "depths": depths})
        with pytest.raises(LaunchError) as info:
            catalog_runs.enqueue_generate(store, bad)
        assert set(info.value.fields) == {"depths"} and word in str(info.value)
    bad = catalog_runs.generate_form("needle", 8, 2, MODEL, None, {**needle, "contexts": "a"})
    with pytest.raises(LaunchError) as info:
        catalog_runs.enqueue_generate(store, bad)
    assert set(info.value.fields) == {"contexts"}
    # another task leaves the (hidden) needle fields out, whatever they hold
    other = catalog_runs.generate_form("induction", 4, 0, MODEL, None, {**needle, "depths": "9"})
    assert not set(catalog_runs.NEEDLE_FIELDS) & set(other)
    assert catalog_runs.enqueue_generate(store, other).config["task"] == "induction"
    assert store.count_runs() == 2
