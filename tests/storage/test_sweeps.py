"""Sweeps in the store: one record and its runs, inserted together, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from storage.errors import Conflict, InvalidInput, NotFound
from storage.records import PairIn, RunOutput, RunStatus, SweepChild
from tests.storage.store_fixtures import head_rows

SPEC = {"kind": "heads", "models": ["zoo:a"], "prompt_sets": [], "fixed": {}}
SPEC["vary"] = {"seed": [0, 1, 2]}


def children(prompt_set_id: int | None = None, n: int = 3) -> list[SweepChild]:
    return [
        SweepChild({"kind": "heads", "model": "zoo:a", "seed": i}, "zoo:a", prompt_set_id, {}, "c")
        for i in range(n)
    ]


def test_a_sweep_and_its_runs_are_queued_together(store) -> None:
    sweep, runs = store.enqueue_sweep("seeds", "heads", SPEC, children())
    assert (sweep.n_runs, sweep.n_ended, sweep.done) == (3, 0, False)
    assert sweep.counts == {"QUEUED": 3} and sweep.spec == SPEC
    assert [r.sweep_id for r in runs] == [sweep.id] * 3
    assert [r.config["seed"] for r in store.sweep_runs(sweep.id)] == [0, 1, 2]
    assert store.get_sweep("seeds") == store.get_sweep(sweep.id) == sweep
    assert store.get_run(runs[0].id).sweep_id == sweep.id

    # workers claim sweep runs like any other; the counts follow
    first = store.claim_next_run("w1")
    assert first is not None and first.id == runs[0].id
    store.finish_run(first.id, RunOutput(head_results=head_rows()))
    second = store.claim_next_run("w1")
    assert second is not None
    store.fail_run(second.id, "JobError: boom")
    store.request_cancel(runs[2].id)
    now = store.get_sweep(sweep.id)
    assert now.counts == {"FINISHED": 1, "FAILED": 1, "CANCELLED": 1}
    assert now.done and now.n_ended == 3
    assert [s.name for s in store.list_sweeps()] == ["seeds"]


def test_a_bad_sweep_stores_nothing(store) -> None:
    store.enqueue_run("heads", {"kind": "heads"}, "zoo:a", None, {}, "c")
    with pytest.raises(NotFound, match="prompt set"):
        store.enqueue_sweep("s", "heads", SPEC, children(prompt_set_id=99))
    with pytest.raises(InvalidInput, match="no runs"):
        store.enqueue_sweep("s", "heads", SPEC, [])
    with pytest.raises(InvalidInput, match="control characters"):
        store.enqueue_sweep("s\n", "heads", SPEC, children())
    with pytest.raises(InvalidInput, match="cannot be stored as JSON"):
        store.enqueue_sweep("s", "heads", {"x": float("nan")}, children())
    store.enqueue_sweep("s", "heads", SPEC, children(n=1))
    with pytest.raises(Conflict, match="already exists"):
        store.enqueue_sweep("s", "heads", SPEC, children())
    assert len(store.list_sweeps()) == 1 and store.count_runs() == 2


def test_unknown_sweeps_name_the_list_command(store) -> None:
    with pytest.raises(NotFound, match=r"'nope'.*headlab sweep list"):
        store.get_sweep("nope")
    with pytest.raises(NotFound, match="42"):
        store.get_sweep(42)


def test_deleting_a_run_keeps_the_sweep(store) -> None:
    ps = store.add_prompt_set("p", [PairIn("a", "b", "c", "d")], "t", None)
    sweep, runs = store.enqueue_sweep("s", "heads", SPEC, children(ps.id, n=2))
    store.request_cancel(runs[0].id)
    store.delete_run(runs[0].id)
    after = store.get_sweep(sweep.id)
    assert after.n_runs == 1 and [r.id for r in store.sweep_runs(sweep.id)] == [runs[1].id]
    assert store.get_run(runs[1].id).status is RunStatus.QUEUED
