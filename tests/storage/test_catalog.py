"""Models and prompt sets: round trips, duplicate names, and deletions that would break runs."""

from __future__ import annotations

import hashlib

import pytest

from storage.catalog_repo import INSERT_CHUNK
from storage.columns import dump_json
from storage.errors import Conflict, InvalidInput, NotFound
from storage.records import PairIn
from tests.storage.store_fixtures import enqueue

PAIRS = [
    PairIn("When Mary and John went", "When Alice and Bob went", " Mary", " John"),
    PairIn("ab ab", "cd cd", " a", " c", correct_id=5, incorrect_id=7, meta={"template": 2}),
]


def test_model_round_trip_and_lookup_by_name_or_spec(store) -> None:
    added = store.add_model("induction", "zoo:induction-2l", {"n_layers": 2, "d_model": 64})
    assert added.created_at.tzinfo is not None
    assert store.get_model("induction") == added
    assert store.get_model("zoo:induction-2l") == added
    assert store.list_models() == [added]


def test_duplicate_model_name_is_a_conflict_naming_the_fix(store) -> None:
    store.add_model("m", "zoo:a", {})
    with pytest.raises(Conflict) as info:
        store.add_model("m", "zoo:b", {})
    assert "'m'" in str(info.value) and "choose another name" in str(info.value)
    assert store.get_model("m").spec == "zoo:a"
    replaced = store.add_model("m", "zoo:b", {"x": 1}, replace=True)
    assert (replaced.spec, replaced.facts) == ("zoo:b", {"x": 1})
    assert len(store.list_models()) == 1


def test_unknown_model_names_the_list_command(store) -> None:
    with pytest.raises(NotFound, match=r"'nope'.*headlab models list"):
        store.get_model("nope")


def test_model_facts_must_be_json(store) -> None:
    with pytest.raises(InvalidInput, match="facts"):
        store.add_model("m", "zoo:a", {"loss": float("nan")})
    assert store.list_models() == []


def test_prompt_set_round_trip(store) -> None:
    record = store.add_prompt_set("ioi", PAIRS, "generated", "zoo:induction-2l", {"seed": 1})
    assert (record.n_pairs, record.meta, record.model_spec) == (2, {"seed": 1}, "zoo:induction-2l")
    assert len(record.content_hash) == 64
    assert store.get_prompt_set("ioi") == record
    assert store.get_prompt_set(record.id) == record
    assert store.list_prompt_sets() == [record]
    pairs = store.get_pairs(record.id)
    assert [p.index for p in pairs] == [0, 1]
    for stored, given in zip(pairs, PAIRS, strict=True):
        assert (stored.clean, stored.corrupted, stored.correct, stored.incorrect) == (
            given.clean,
            given.corrupted,
            given.correct,
            given.incorrect,
        )
        assert (stored.correct_id, stored.incorrect_id, stored.meta) == (
            given.correct_id,
            given.incorrect_id,
            given.meta,
        )


def test_same_content_gives_the_same_hash(store) -> None:
    a = store.add_prompt_set("a", PAIRS, "x", None)
    b = store.add_prompt_set("b", PAIRS, "y", None)
    c = store.add_prompt_set("c", PAIRS[:1], "y", None)
    assert a.content_hash == b.content_hash != c.content_hash


def test_content_hash_is_sha256_of_the_canonical_json_of_the_pairs(store) -> None:
    record = store.add_prompt_set("a", PAIRS, "x", None)
    rows = [
        {
            "clean": p.clean,
            "corrupted": p.corrupted,
            "correct": p.correct,
            "incorrect": p.incorrect,
            "correct_id": p.correct_id,
            "incorrect_id": p.incorrect_id,
            "meta_json": p.meta,
        }
        for p in PAIRS
    ]
    assert record.content_hash == hashlib.sha256(dump_json(rows).encode()).hexdigest()


def test_pairs_from_an_iterator_are_stored_in_chunks(store) -> None:
    many = [PairIn(f"p{i} a", f"p{i} b", " a", " b", meta={"i": i}) for i in range(4500)]
    streamed = store.add_prompt_set("streamed", iter(many), "x", None)
    listed = store.add_prompt_set("listed", many, "x", None)
    assert streamed.n_pairs == 4500 and streamed.content_hash == listed.content_hash
    stored = store.get_pairs(streamed.id)
    assert [p.index for p in stored] == list(range(4500))
    assert [(p.clean, p.meta) for p in stored] == [(p.clean, p.meta) for p in many]


def test_a_failing_iterator_stores_nothing(store) -> None:
    def pairs():
        yield from [PairIn(f"p{i}", f"q{i}", "a", "b") for i in range(INSERT_CHUNK + 10)]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        store.add_prompt_set("broken", pairs(), "x", None)
    with pytest.raises(InvalidInput, match="pair 3: clean must be text"):
        store.add_prompt_set("typed", [*PAIRS, PAIRS[0], PairIn(1, "b", "a", "b")], "x", None)  # type: ignore[arg-type]
    assert store.list_prompt_sets() == []
    store.add_prompt_set("broken", PAIRS, "x", None)  # the name is free


def test_duplicate_prompt_set_name_is_a_conflict(store) -> None:
    store.add_prompt_set("ioi", PAIRS, "x", None)
    with pytest.raises(Conflict) as info:
        store.add_prompt_set("ioi", PAIRS[:1], "x", None)
    assert "'ioi'" in str(info.value) and "choose another name or delete it" in str(info.value)
    assert store.get_prompt_set("ioi").n_pairs == 2


def test_empty_prompt_set_is_refused(store) -> None:
    with pytest.raises(InvalidInput, match="no pairs"):
        store.add_prompt_set("empty", [], "x", None)
    assert store.list_prompt_sets() == []


def test_unknown_prompt_set_names_the_list_command(store) -> None:
    with pytest.raises(NotFound, match=r"'nope'.*headlab prompts list"):
        store.get_prompt_set("nope")
    with pytest.raises(NotFound, match="42"):
        store.get_pairs(42)


def test_prompt_set_used_by_runs_cannot_be_deleted(store) -> None:
    record = store.add_prompt_set("ioi", PAIRS, "x", None)
    run_id = enqueue(store, prompt_set_id=record.id)
    with pytest.raises(Conflict) as info:
        store.delete_prompt_set("ioi")
    assert f"({run_id})" in str(info.value) and "delete those runs first" in str(info.value)
    assert len(store.get_pairs(record.id)) == 2
    store.delete_run(run_id)
    store.delete_prompt_set("ioi")
    assert store.list_prompt_sets() == []
    with pytest.raises(NotFound):
        store.get_pairs(record.id)


def test_run_on_unknown_prompt_set_is_refused(store) -> None:
    with pytest.raises(NotFound, match="prompt set"):
        enqueue(store, prompt_set_id=99)
    assert store.count_runs() == 0
