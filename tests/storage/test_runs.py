"""The run lifecycle and result round trips on a real SQLite file."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.engine import make_engine
from storage.errors import Conflict, InvalidInput, NotFound
from storage.records import ArtifactIn, EdgeIn, HeadResultIn, NodeIn, RunOutput, RunStatus
from tests.storage.store_fixtures import enqueue, head_rows, small_output


def running(store, worker: str = "w1") -> int:
    run_id = enqueue(store)
    store.claim_run(run_id, worker)
    return run_id


def test_enqueue_round_trip(store) -> None:
    before = datetime.now(UTC)
    run = store.get_run(enqueue(store))
    assert run.status is RunStatus.QUEUED and run.kind == "head_stats"
    assert run.config == {"kind": "head_stats", "model": "zoo:induction-2l", "seed": 0}
    assert run.versions == {"headlab": "0.1.0", "torch": "2.13.0"}
    assert (run.code_version, run.model_spec, run.progress) == ("abc123", "zoo:induction-2l", 0.0)
    assert run.worker_id is None and run.started_at is None and not run.cancel_requested
    assert before <= run.created_at <= datetime.now(UTC)


def test_claim_takes_the_oldest_queued_run_of_the_requested_kinds(store) -> None:
    first, second = enqueue(store, "a"), enqueue(store, "b")
    claimed = store.claim_next_run("w1", kinds=["b"])
    assert claimed.id == second and claimed.status is RunStatus.RUNNING
    assert claimed.worker_id == "w1" and claimed.started_at == claimed.heartbeat_at
    assert store.claim_next_run("w2", kinds=["b"]) is None
    assert store.claim_next_run("w2").id == first
    assert store.claim_next_run("w2") is None


def test_heartbeat_records_progress_and_reports_cancel(store) -> None:
    run_id = running(store)
    assert store.heartbeat(run_id, "w1", 0.25, "layer 1 of 4") is False
    run = store.get_run(run_id)
    assert (run.progress, run.message) == (0.25, "layer 1 of 4")
    assert store.heartbeat(run_id, "someone-else", 0.5, "x") is True  # not theirs: stop
    assert store.request_cancel(run_id).cancel_requested
    assert store.get_run(run_id).status is RunStatus.RUNNING
    assert store.heartbeat(run_id, "w1", 0.5, "layer 2 of 4") is True
    assert store.mark_cancelled(run_id).status is RunStatus.CANCELLED
    assert store.heartbeat(run_id, "w1", 0.75, "late") is True


def test_finish_run_round_trip(store, tmp_path: Path) -> None:
    run_id = running(store)
    patterns = tmp_path / "patterns.safetensors"
    patterns.write_bytes(b"\x00\x01" * 500)
    output = RunOutput(
        head_results=[
            *head_rows(metric="entropy"),
            HeadResultIn("patch_resid", 1, None, -0.5, position=3),
            HeadResultIn("dla", 0, 2, 0.25, prompt=7),
        ],
        artifacts=[ArtifactIn("patterns.safetensors", "patterns", str(patterns), meta={"n": 2})],
        edges=[EdgeIn("a0.h1", "a1.h2<k>", 0.9, True), EdgeIn("input", "logits", -0.1, False)],
        nodes=[NodeIn("a0.h1", 0, 1, 0.9, True), NodeIn("input", None, None, 0.0, False)],
        summary={"faithfulness_curve": {"k": [1, 2], "faithfulness": [0.5, 0.9], "area": 0.7}},
    )
    run = store.finish_run(run_id, output)
    assert run.status is RunStatus.FINISHED and run.progress == 1.0
    assert run.finished_at is not None and run.summary == output.summary
    assert store.metrics(run_id) == ["dla", "entropy", "patch_resid"]
    entropy = store.head_results(run_id, "entropy")
    assert list(entropy.columns) == ["metric", "layer", "head", "position", "prompt", "value"]
    assert entropy[["layer", "head"]].astype(int).values.tolist() == [
        [layer, head] for layer in range(2) for head in range(4)
    ]
    assert entropy["value"].tolist() == [r.value for r in head_rows()]
    resid = store.head_results(run_id, "patch_resid").iloc[0]
    assert (resid["layer"], resid["position"], resid["value"]) == (1, 3, -0.5)
    assert resid["head"] is pd_na()
    assert store.head_results(run_id, "dla").iloc[0]["prompt"] == 7
    assert len(store.head_results(run_id)) == 10
    edges = store.edges(run_id)
    assert edges.values.tolist() == [
        ["a0.h1", "a1.h2<k>", 0.9, True],
        ["input", "logits", -0.1, False],
    ]
    nodes = store.nodes(run_id)
    assert nodes["name"].tolist() == ["a0.h1", "input"] and nodes["layer"].isna().tolist() == [
        False,
        True,
    ]
    (artifact,) = store.artifacts(run_id)
    assert artifact == store.get_artifact(run_id, "patterns.safetensors")
    assert Path(artifact.path).read_bytes() == patterns.read_bytes()
    assert artifact.size == 1000 and artifact.meta == {"n": 2}
    assert Path(artifact.path).name == f"{artifact.sha256}.safetensors"


def pd_na():
    import pandas as pd

    return pd.NA


def test_finishing_twice_is_a_conflict(store) -> None:
    run_id = running(store)
    store.finish_run(run_id, small_output())
    with pytest.raises(Conflict, match=f"run {run_id} is FINISHED"):
        store.finish_run(run_id, small_output())
    assert len(store.head_results(run_id)) == 8


def test_cancel_queued_at_once_running_on_request_finished_refused(store) -> None:
    queued = enqueue(store)
    cancelled = store.request_cancel(queued)
    assert cancelled.status is RunStatus.CANCELLED and cancelled.finished_at is not None
    assert store.claim_next_run("w") is None
    run_id = running(store)
    assert store.request_cancel(run_id).cancel_requested
    store.mark_cancelled(run_id)
    done = running(store)
    store.finish_run(done, small_output())
    with pytest.raises(Conflict, match=f"run {done} is already FINISHED; nothing to cancel"):
        store.request_cancel(done)


def test_finish_after_cancel_is_a_conflict_and_writes_nothing(store, tmp_path: Path) -> None:
    run_id = running(store)
    store.request_cancel(run_id)
    store.mark_cancelled(run_id)
    blob = tmp_path / "x.bin"
    blob.write_bytes(b"abc")
    output = RunOutput(
        head_results=head_rows(),
        artifacts=[ArtifactIn("x.bin", "blob", str(blob))],
        edges=[EdgeIn("a", "b", 1.0, True)],
    )
    with pytest.raises(Conflict, match=f"run {run_id} is CANCELLED; its results were not stored"):
        store.finish_run(run_id, output)
    assert store.count_result_rows(run_id) == 0
    assert store.get_run(run_id).status is RunStatus.CANCELLED


def test_reap_stale_fails_runs_whose_worker_went_silent(store) -> None:
    silent, alive = running(store, "silent-worker"), running(store, "live-worker")
    queued = enqueue(store)
    time.sleep(0.3)
    store.heartbeat(alive, "live-worker", 0.1, "still here")
    assert store.reap_stale(0.2) == [silent]
    run = store.get_run(silent)
    assert run.status is RunStatus.FAILED and run.finished_at is not None
    assert run.error.startswith("worker silent-worker stopped sending heartbeats (last at 20")
    assert run.error.endswith("UTC); the run was marked failed")
    assert store.get_run(alive).status is RunStatus.RUNNING
    assert store.get_run(queued).status is RunStatus.QUEUED
    assert store.reap_stale(0.2) == []
    with pytest.raises(Conflict, match="FAILED"):
        store.finish_run(silent, small_output())
    assert store.count_result_rows(silent) == 0


def test_nan_value_is_refused_up_front_naming_the_row(store) -> None:
    run_id = running(store)
    rows = [*head_rows(), HeadResultIn("patch_z", 1, 3, float("nan"))]
    with pytest.raises(InvalidInput) as info:
        store.finish_run(run_id, RunOutput(head_results=rows))
    message = str(info.value)
    assert "metric 'patch_z', layer 1, head 3" in message and "nan" in message
    assert store.count_result_rows(run_id) == 0
    assert store.get_run(run_id).status is RunStatus.RUNNING


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        (RunOutput(head_results=[HeadResultIn("m", -1, 0, 1.0)]), "layer must be >= 0"),
        (RunOutput(head_results=[HeadResultIn("m", 0, 1.5, 1.0)]), "head must be an integer"),
        (RunOutput(head_results=[HeadResultIn("", 0, 0, 1.0)]), "metric name"),
        (RunOutput(edges=[EdgeIn("a", "b", float("inf"), True)]), "edge a -> b score is inf"),
        (RunOutput(nodes=[NodeIn("a0.h0", 0, 0, float("nan"), True)]), "node a0.h0 score"),
        (RunOutput(summary={"auc": float("nan")}), "summary cannot be stored as JSON"),
    ],
)
def test_bad_output_is_refused_with_a_clear_message(store, output: RunOutput, needle: str) -> None:
    run_id = running(store)
    with pytest.raises(InvalidInput, match=needle):
        store.finish_run(run_id, output)
    assert store.get_run(run_id).status is RunStatus.RUNNING


FAILING_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER boom BEFORE INSERT ON head_results WHEN NEW.metric = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'disk fell off'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'disk fell off'; "
        "END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER boom BEFORE INSERT ON head_results FOR EACH ROW "
        "WHEN (NEW.metric = 'boom') EXECUTE FUNCTION boom()",
    ],
}


def test_database_failure_midway_leaves_no_partial_rows(store, db_url: str, tmp_path: Path) -> None:
    """A real failure inside the FINISHED transaction (a trigger aborting the 5th insert)."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for statement in FAILING_TRIGGER[conn.dialect.name]:
            conn.execute(text(statement))
    engine.dispose()
    run_id = running(store)
    blob = tmp_path / "x.bin"
    blob.write_bytes(b"abc")
    rows = head_rows()
    rows.insert(4, HeadResultIn("boom", 0, 0, 1.0))
    output = RunOutput(
        head_results=rows,
        artifacts=[ArtifactIn("x.bin", "blob", str(blob))],
        edges=[EdgeIn("a", "b", 1.0, True)],
        summary={"x": 1},
    )
    with pytest.raises(Conflict, match="disk fell off"):
        store.finish_run(run_id, output)
    run = store.get_run(run_id)
    assert run.status is RunStatus.RUNNING and run.summary == {} and run.progress == 0.0
    assert store.count_result_rows(run_id) == 0


def test_fail_and_mark_cancelled_refuse_ended_runs(store) -> None:
    run_id = running(store)
    failed = store.fail_run(run_id, "JobError: the prompt set has pairs of different lengths")
    assert failed.status is RunStatus.FAILED and "different lengths" in failed.error
    with pytest.raises(Conflict, match=f"run {run_id} is FAILED"):
        store.fail_run(run_id, "again")
    with pytest.raises(Conflict, match=f"run {run_id} is FAILED"):
        store.mark_cancelled(run_id)
    with pytest.raises(Conflict, match="only QUEUED runs can be claimed"):
        store.claim_run(run_id, "w2")


def test_unknown_run_ids_name_the_list_command(store) -> None:
    for call in (
        lambda: store.get_run(77),
        lambda: store.head_results(77),
        lambda: store.metrics(77),
        lambda: store.artifacts(77),
        lambda: store.edges(77),
        lambda: store.request_cancel(77),
        lambda: store.delete_run(77),
        lambda: store.fail_run(77, "x"),
        lambda: store.finish_run(77, small_output()),
    ):
        with pytest.raises(NotFound, match=r"run 77 does not exist; .*`headlab runs list`"):
            call()


def test_unknown_artifact_lists_the_available_names(store, tmp_path: Path) -> None:
    run_id = running(store)
    (tmp_path / "tokens.json").write_text("{}")
    art = ArtifactIn("tokens.json", "tokens", str(tmp_path / "tokens.json"))
    store.finish_run(run_id, RunOutput(artifacts=[art]))
    with pytest.raises(NotFound, match=r"no artifact named 'nope'; it has: tokens.json"):
        store.get_artifact(run_id, "nope")


def test_delete_run_refuses_running_and_removes_unshared_files(store, tmp_path: Path) -> None:
    shared, own = tmp_path / "shared.json", tmp_path / "own.json"
    shared.write_text('{"same": true}')
    own.write_text('{"mine": true}')
    keep = running(store)
    store.finish_run(keep, RunOutput(artifacts=[ArtifactIn("a.json", "j", str(shared))]))
    doomed = running(store)
    with pytest.raises(Conflict, match=f"cancel it first with `headlab runs cancel {doomed}`"):
        store.delete_run(doomed)
    store.finish_run(
        doomed,
        RunOutput(
            head_results=head_rows(),
            artifacts=[
                ArtifactIn("a.json", "j", str(shared)),
                ArtifactIn("b.json", "j", str(own)),
            ],
        ),
    )
    paths = {a.name: Path(a.path) for a in store.artifacts(doomed)}
    store.delete_run(doomed)
    with pytest.raises(NotFound):
        store.get_run(doomed)
    assert paths["a.json"].exists() and not paths["b.json"].exists()
    assert Path(store.get_artifact(keep, "a.json").path).read_text() == '{"same": true}'


def test_list_and_count_runs(store) -> None:
    ids = [enqueue(store, kind) for kind in ("a", "b", "a", "a")]
    store.claim_run(ids[2], "w")
    assert [r.id for r in store.list_runs()] == ids[::-1]
    assert [r.id for r in store.list_runs(kind="a")] == [ids[3], ids[2], ids[0]]
    assert [r.id for r in store.list_runs(status="RUNNING")] == [ids[2]]
    assert [r.id for r in store.list_runs(status=RunStatus.QUEUED, limit=2, offset=1)] == [
        ids[1],
        ids[0],
    ]
    assert store.count_runs() == 4 and store.count_runs(kind="a", status="queued") == 2
    with pytest.raises(InvalidInput, match="unknown run status 'DONE'; use one of QUEUED"):
        store.list_runs(status="DONE")


def test_hundred_thousand_head_rows_are_written_and_read_quickly(store) -> None:
    run_id = running(store)
    rows = [
        HeadResultIn("patch_z", layer, head, layer + head / 1000, position=pos)
        for layer in range(10)
        for head in range(100)
        for pos in range(100)
    ]
    start = time.perf_counter()
    store.finish_run(run_id, RunOutput(head_results=rows))
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    frame = store.head_results(run_id, "patch_z")
    read_s = time.perf_counter() - start
    assert len(frame) == 100_000 and frame["value"].iloc[-1] == pytest.approx(9.099)
    print(f"100k head rows: finish_run {write_s:.2f} s, head_results {read_s:.2f} s")
    assert write_s < 15 and read_s < 15  # generous: 2 shared cores; ~1 s each when idle
