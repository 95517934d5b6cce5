"""Content-addressed artifact files, and data directories that cannot be written.

Tests run as root here, so ``chmod`` cannot make a directory unwritable. The faults below are
real nonetheless: a data directory whose path runs through a regular file (ENOTDIR), a file-size
limit set with ``setrlimit`` in a child process (EFBIG), and — where mounting is permitted — a
tiny tmpfs that fills up (ENOSPC) and is then remounted read-only (EROFS).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from storage.artifacts import ArtifactFiles, suffix_for
from storage.errors import InvalidInput, StoreError
from storage.records import ArtifactIn, RunOutput, RunStatus
from storage.store import ResultStore
from tests.storage.store_fixtures import enqueue, head_rows


def test_same_content_is_stored_once_atomically(tmp_path: Path) -> None:
    files = ArtifactFiles(tmp_path / "art")
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    first, second = files.put(a, "x.safetensors"), files.put(b, "y.safetensors")
    assert first == second
    assert first.relpath == f"{first.sha256[:2]}/{first.sha256}.safetensors"
    assert files.path(first.relpath).read_bytes() == b"same bytes"
    assert list((tmp_path / "art" / ".tmp").iterdir()) == []  # no temp file left behind
    assert files.put(a, "x.json").relpath.endswith(".json")


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("patterns.safetensors", ".safetensors"),
        ("w.tar.gz", ".tar.gz"),
        ("noext", ""),
        ("../../etc/passwd", ""),
        ("weird.s u f", ""),
    ],
)
def test_suffix_is_taken_from_safe_names_only(name: str, suffix: str) -> None:
    assert suffix_for(name) == suffix


def test_missing_or_directory_source_is_invalid_input(tmp_path: Path) -> None:
    files = ArtifactFiles(tmp_path / "art")
    with pytest.raises(InvalidInput, match="is missing"):
        files.put(tmp_path / "nope.bin", "nope.bin")
    with pytest.raises(InvalidInput, match="is a directory"):
        files.put(tmp_path, "sae")


def _running_store(db_url: str, artifacts_dir: Path) -> tuple[ResultStore, int]:
    from storage import migrate

    migrate.upgrade(db_url)
    store = ResultStore(db_url, artifacts_dir)
    run_id = enqueue(store)
    store.claim_run(run_id, "w")
    return store, run_id


def test_unwritable_artifact_directory_fails_clearly_and_changes_nothing(
    tmp_path: Path, db_url: str
) -> None:
    blocker = tmp_path / "data-is-a-file"
    blocker.write_text("a regular file where the data directory should be")
    store, run_id = _running_store(db_url, blocker / "artifacts")
    source = tmp_path / "patterns.safetensors"
    source.write_bytes(b"x" * 100)
    output = RunOutput(
        head_results=head_rows(), artifacts=[ArtifactIn("patterns.safetensors", "p", str(source))]
    )
    with pytest.raises(StoreError) as info:
        store.finish_run(run_id, output)
    message = str(info.value)
    assert str(blocker / "artifacts") in message and "ENOTDIR" in message
    assert "nothing was recorded in the database" in message
    assert store.get_run(run_id).status is RunStatus.RUNNING
    assert store.count_result_rows(run_id) == 0
    store.close()


FSIZE_CHILD = """
import resource, signal, sys
from storage.artifacts import ArtifactFiles
from storage.errors import StoreError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    ArtifactFiles(sys.argv[1]).put(sys.argv[2], "big.bin")
except StoreError as exc:
    print(exc)
    sys.exit(3)
"""


def test_file_size_limit_is_a_store_error_and_leaves_no_partial_file(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"y" * 100_000)
    root = tmp_path / "art"
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(root), str(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert f"cannot write artifact 'big.bin' under {root}" in done.stdout
    assert "EFBIG" in done.stdout
    assert [p for p in root.rglob("*") if p.is_file()] == []


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    mount_point = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs CAP_SYS_ADMIN; ENOTDIR and EFBIG tests still run")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_then_read_only_filesystem(tiny_tmpfs: Path, tmp_path: Path, db_url: str) -> None:
    store, run_id = _running_store(db_url, tiny_tmpfs / "artifacts")
    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * 1_000_000)
    output = RunOutput(head_results=head_rows(), artifacts=[ArtifactIn("big.bin", "b", str(big))])
    with pytest.raises(StoreError, match=r"No space left on device \(ENOSPC\)"):
        store.finish_run(run_id, output)
    assert store.count_result_rows(run_id) == 0
    assert [p for p in tiny_tmpfs.rglob("*") if p.is_file()] == []  # temp file cleaned up

    small = tmp_path / "small.bin"
    small.write_bytes(b"fits")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    output = RunOutput(artifacts=[ArtifactIn("small.bin", "b", str(small))])
    with pytest.raises(StoreError, match=rf"under {tiny_tmpfs / 'artifacts'}: .*\(EROFS\)"):
        store.finish_run(run_id, output)
    assert store.get_run(run_id).status is RunStatus.RUNNING
    store.close()
