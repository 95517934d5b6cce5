"""Files a web user uploads for a run (a text corpus, a ground-truth JSON), kept in the data dir.

The web app never opens a path a client names: a run's file fields (``text_path``,
``ground_truth``) take an *upload reference* instead, ``upload:<sha256><suffix>``, returned when
the file is uploaded. Uploads are content-addressed like artifacts (``ArtifactFiles``), under
``$HEADLAB_HOME/artifacts/uploads``, capped at ``MAX_UPLOAD_BYTES``. Resolving a reference
(``Uploads.resolve``) accepts only that exact shape — no ``..``, no absolute path, no other
name — follows symlinks and refuses anything that lands outside the upload root, and checks the
file's bytes against the sha256 in its name. The CLI and the Python API run as the user and may
name local paths directly.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from storage.artifacts import CHUNK, ArtifactFiles, suffix_for
from storage.errors import InvalidInput

PREFIX = "upload:"
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
_REF = re.compile(r"^upload:([0-9a-f]{64})((?:\.[A-Za-z0-9]{1,12}){0,3})$")


def is_upload_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


class Uploads:
    """The upload folder of one store."""

    def __init__(self, root: Path) -> None:
        self.files = ArtifactFiles(Path(root))

    @property
    def root(self) -> Path:
        return self.files.root

    def save(self, data: bytes, filename: str) -> str:
        """Store ``data`` (the file ``filename`` a user uploaded); returns its reference."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput(
                f"upload {filename!r} is {len(data) / 2**20:.1f} MiB; the limit is "
                f"{MAX_UPLOAD_BYTES // 2**20} MiB; use the CLI (`headlab run`) for bigger files"
            )
        if not data:
            raise InvalidInput(f"upload {filename!r} is empty; nothing was stored")
        (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root / ".tmp", prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            stored = self.files.put(tmp, filename)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return f"{PREFIX}{stored.sha256}{suffix_for(filename)}"

    def resolve(self, ref: str) -> Path:
        """The verified file behind ``ref``; ``InvalidInput`` naming the problem otherwise."""
        match = _REF.match(ref)
        if match is None:
            raise InvalidInput(
                f"{ref!r} is not an upload reference (upload:<sha256>[.suffix]); upload the file "
                "on the Launch page and use the reference it gives"
            )
        sha, suffix = match.group(1), match.group(2)
        path = self.files.path(f"{sha[:2]}/{sha}{suffix}")
        root = self.root.resolve()
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise InvalidInput(f"{ref}: no such upload; upload the file again") from None
        if not real.is_relative_to(root) or not real.is_file():
            raise InvalidInput(f"{ref}: refused, it does not resolve to a file in the uploads")
        digest = hashlib.sha256()
        with real.open("rb") as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha:
            raise InvalidInput(f"{ref}: the stored upload is corrupt (sha256 differs); re-upload")
        return real

    def local_path(self, value: str) -> Path:
        """A file field's value as a path: an upload reference resolved, else the path as given
        (only the CLI and the API, which run as the user, put plain paths in a config)."""
        return self.resolve(value) if is_upload_ref(value) else Path(value).expanduser()
