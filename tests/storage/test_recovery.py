"""What a run killed mid-way leaves behind is removed once the run has ended — and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from storage.records import ArtifactIn, RunOutput, RunStatus
from storage.store import ResultStore
from tests.storage.store_fixtures import enqueue, head_rows

KILLED_AFTER_PUT = """
import os, signal, sys
from storage.store import ResultStore
store = ResultStore(sys.argv[1], sys.argv[2])
run_id = int(sys.argv[3])
store.files.put(sys.argv[4], "patterns.safetensors", lambda rel: store.pending.add(run_id, rel))
os.kill(os.getpid(), signal.SIGKILL)  # between the file and the commit of its rows
"""


def _stored_files(store: ResultStore) -> list[Path]:
    return sorted(p for p in store.files.root.glob("[0-9a-f][0-9a-f]/*") if p.is_file())


def _kill_after_put(store: ResultStore, run_id: int, source: Path) -> None:
    args = [store.db_url, str(store.files.root), str(run_id), str(source)]
    done = subprocess.run([sys.executable, "-c", KILLED_AFTER_PUT, *args], timeout=60)
    assert done.returncode == -9


def test_files_of_a_run_killed_before_its_commit_are_removed_once_it_failed(
    store: ResultStore, tmp_path: Path
) -> None:
    source = tmp_path / "patterns.safetensors"
    source.write_bytes(b"half a run")
    run_id = enqueue(store)
    store.claim_run(run_id, "w")
    _kill_after_put(store, run_id, source)
    assert len(_stored_files(store)) == 1
    assert store.check_artifacts()[2] != []  # an orphan now

    assert not store.recover_after_crashes(60.0)  # still RUNNING: it may yet commit
    assert len(_stored_files(store)) == 1

    store.fail_run(run_id, "worker died")
    recovered = store.recover_after_crashes(60.0)
    assert len(recovered.files) == 1 and recovered.files[0].startswith("artifacts/")
    assert _stored_files(store) == []
    assert store.pending.runs() == {}
    assert store.check_artifacts() == (0, [], [])


def test_a_file_another_run_references_or_is_storing_is_kept(
    store: ResultStore, tmp_path: Path
) -> None:
    shared = tmp_path / "same.bin"
    shared.write_bytes(b"same bytes")
    dead, live, kept = enqueue(store), enqueue(store), enqueue(store)
    for run_id in (dead, live, kept):
        store.claim_run(run_id, "w")
    _kill_after_put(store, dead, shared)
    _kill_after_put(store, live, shared)  # still RUNNING: its file must stay
    store.fail_run(dead, "worker died")
    assert store.recover_after_crashes(60.0).files == []
    assert len(_stored_files(store)) == 1

    store.fail_run(live, "worker died")
    same = ArtifactIn("patterns.safetensors", "p", str(shared))
    store.finish_run(kept, RunOutput(head_results=head_rows(), artifacts=[same]))
    assert store.recover_after_crashes(60.0).files == []
    assert len(_stored_files(store)) == 1
    assert store.pending.runs() == {}
    store.open_artifact(kept, "patterns.safetensors")  # the same content, referenced


def test_a_finished_run_leaves_no_pending_list(store: ResultStore, tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"a")
    run_id = enqueue(store)
    store.claim_run(run_id, "w")
    store.finish_run(run_id, RunOutput(artifacts=[ArtifactIn("a.bin", "a", str(source))]))
    assert store.pending.runs() == {}


def test_stale_temp_files_and_work_folders_of_ended_runs_are_removed(
    store: ResultStore,
) -> None:
    ended, running = enqueue(store), enqueue(store)
    store.claim_run(ended, "w")
    store.claim_run(running, "w")
    store.fail_run(ended, "worker died")
    for run_id in (ended, running):
        (store.work_dir(run_id) / "scratch.bin").write_bytes(b"x")
    tmp_dir = store.files.root / ".tmp"
    tmp_dir.mkdir(parents=True)
    old, fresh = tmp_dir / "incoming-old", tmp_dir / "incoming-fresh"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))

    recovered = store.recover_after_crashes(60.0)
    assert recovered.work_folders == [f"work/run{ended}"]
    assert recovered.temp_files == ["artifacts/.tmp/incoming-old"]
    assert not (store.work_root / f"run{ended}").exists()
    assert (store.work_root / f"run{running}" / "scratch.bin").exists()
    assert fresh.exists()
    assert store.get_run(running).status is RunStatus.RUNNING
