"""Content-addressed artifact files: big run outputs (attention patterns, SAE weights, grids).

A file is stored once under ``<root>/<first two hex digits>/<sha256><suffix>``, where the suffix
comes from the artifact's name (``patterns.safetensors`` → ``.safetensors``) so the files stay
recognisable. Writes are atomic: the bytes are copied (and hashed in the same pass) into a temp
file under ``<root>/.tmp``, flushed to disk, then moved into place with ``os.replace``; a reader
never sees a half-written file, and identical content is stored once.

Files are written BEFORE the database rows that reference them, so a crash leaves at most an
unreferenced file, never a row pointing at nothing. A read-only or full data directory
(any ``OSError``: ENOSPC, EACCES, EROFS, ENOTDIR, EFBIG …) raises ``StoreError`` naming the
directory; the database is not touched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from storage.errors import CorruptArtifact, InvalidInput, StoreError

CHUNK = 1 << 20
_verified: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> sha256 checked
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,12}){1,3}$")
_RELPATH = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}(\.[A-Za-z0-9]{1,12}){0,3}$")


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    relpath: str  # relative to the artifact root, with forward slashes


def suffix_for(name: str) -> str:
    """The file suffix kept on the stored copy, e.g. ``.safetensors`` or ``.tar.gz``."""
    suffix = "".join(Path(name.rstrip("/")).suffixes)
    return suffix.lower() if _SUFFIX.match(suffix) else ""


def _describe(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc)
    return f"{reason} ({code})" if code else reason


class ArtifactFiles:
    """The artifact directory of one store."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def exists(self, relpath: str) -> bool:
        return self.path(relpath).is_file()

    def put(
        self, source: str | Path, name: str, before_move: Callable[[str], None] | None = None
    ) -> StoredFile:
        """Copy ``source`` into the store (atomically, once per content) and return its address.
        ``before_move(relpath)`` is called once the address is known, before the file appears
        there (``PendingFiles.add`` records it, so a crash after the move leaves a known file)."""
        source = Path(source)
        if not source.is_file():
            what = "a directory (pack it into one file)" if source.is_dir() else "missing"
            raise InvalidInput(f"artifact {name!r}: {source} is {what}; nothing was stored")
        try:
            return self._copy_in(source, name, before_move)
        except OSError as exc:
            if exc.filename is not None and Path(exc.filename) == source:
                raise InvalidInput(
                    f"artifact {name!r}: cannot read {source}: {_describe(exc)}"
                ) from None
            raise StoreError(
                f"cannot write artifact {name!r} under {self.root}: {_describe(exc)}; free disk "
                f"space or make the directory writable (it is $HEADLAB_HOME/artifacts); "
                f"nothing was recorded in the database"
            ) from None

    def _copy_in(
        self, source: Path, name: str, before_move: Callable[[str], None] | None
    ) -> StoredFile:
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="incoming-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            relpath = f"{sha[:2]}/{sha}{suffix_for(name)}"
            target = self.path(relpath)
            if before_move is not None:
                before_move(relpath)
            if target.is_file() and target.stat().st_size == size:
                os.unlink(tmp_name)
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredFile(sha256=sha, size=size, relpath=relpath)

    @staticmethod
    def verify(path: Path, sha256: str, size: int, what: str) -> Path:
        """The stored file ``path``, after checking its size and sha256 against the stored ones
        (a file already verified and unchanged since — same mtime and size — is not re-read).
        Raises ``CorruptArtifact`` naming ``what`` otherwise."""
        try:
            stat = path.stat()
        except OSError:
            raise CorruptArtifact(
                f"{what} is missing ({path}); restore the data directory from a backup or run "
                "it again"
            ) from None
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if _verified.get(key) == sha256:
            return path
        digest = hashlib.sha256()
        if stat.st_size == size:
            with path.open("rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
        if stat.st_size != size or digest.hexdigest() != sha256:
            raise CorruptArtifact(
                f"{what} is corrupt ({path.name}: its bytes no longer match the stored sha256); "
                "restore it from a backup or run it again"
            )
        if len(_verified) > 4096:
            _verified.clear()
        _verified[key] = sha256
        return path

    def remove_stale_temp(self, older_than_s: float) -> list[str]:
        """Delete half-copied temp files (a writer killed mid-copy) untouched for
        ``older_than_s``; a live copy writes continuously, so its file is always fresh."""
        tmp_dir = self.root / ".tmp"
        cutoff = time.time() - older_than_s
        removed = []
        for path in sorted(tmp_dir.glob("incoming-*")) if tmp_dir.is_dir() else []:
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(f".tmp/{path.name}")
        return removed

    def remove(self, relpath: str) -> None:
        """Delete a stored file if present (best effort: a leftover file is harmless)."""
        with contextlib.suppress(OSError):
            self.path(relpath).unlink(missing_ok=True)


class PendingFiles:
    """Which stored files a run put before its rows were committed, one small file per run
    under ``<root>/.pending``. A run that dies between writing files and committing leaves its
    list behind; once the run has ended, the files no row references are deleted from it."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / ".pending"

    def _file(self, run_id: int) -> Path:
        return self.dir / f"run{run_id}.txt"

    def add(self, run_id: int, relpath: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._file(run_id).open("a", encoding="utf-8") as out:
            out.write(relpath + "\n")
            out.flush()
            os.fsync(out.fileno())

    def clear(self, run_id: int) -> None:
        with contextlib.suppress(OSError):
            self._file(run_id).unlink(missing_ok=True)

    def runs(self) -> dict[int, list[str]]:
        """Every run with a pending list, and the relpaths on it."""
        found: dict[int, list[str]] = {}
        for path in sorted(self.dir.glob("run*.txt")) if self.dir.is_dir() else []:
            run_id = path.stem.removeprefix("run")
            if run_id.isdigit():
                with contextlib.suppress(OSError):
                    lines = path.read_text(encoding="utf-8").split()
                    found[int(run_id)] = [r for r in lines if _RELPATH.match(r)]
        return found
