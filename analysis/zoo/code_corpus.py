"""The real text every machine has offline: the Python standard library's own source.

``corpus_files()`` lists the interpreter's stdlib ``*.py`` files, sorted, with test suites,
installed packages and IDLE left out. ``corpus_hash()`` fingerprints that list (paths relative
to the stdlib folder and each file's sha256), so a zoo model records which text it learned from.
``split_files()`` holds out every ``VALIDATION_EVERY``-th file for validation. ``train_bpe()``
trains a byte-level BPE tokenizer on the training files with HF ``tokenizers``: every byte is a
base token (so any text encodes, with no unknown token), plus ``<bos>`` (prepended to every
encoded text) and ``<pad>``.
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from analysis.zoo.tokenizer import BOS, PAD, save_bos_tokenizer

VALIDATION_EVERY = 20  # file i (sorted order) is validation when i % 20 == 0
# Folders whose files are not the library itself.
EXCLUDED_PARTS = frozenset(
    {"test", "tests", "idle_test", "idlelib", "site-packages", "dist-packages", "__pycache__"}
)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(root: Path | None = None) -> list[Path]:
    """The stdlib ``*.py`` files that make up the corpus, sorted by relative path."""
    base = root or stdlib_root()
    files = []
    for path in base.rglob("*.py"):
        rel = path.relative_to(base)
        if EXCLUDED_PARTS.intersection(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        files.append(path)
    if not files:
        raise FileNotFoundError(f"no Python source under {base}: the corpus needs the stdlib")
    return sorted(files, key=lambda p: p.relative_to(base).as_posix())


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def corpus_hash(files: list[Path], root: Path | None = None) -> str:
    """sha256 over every file's relative path and content hash, in order."""
    base = root or stdlib_root()
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(base).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def split_files(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(train, validation): every ``VALIDATION_EVERY``-th file is held out."""
    train = [p for i, p in enumerate(files) if i % VALIDATION_EVERY]
    validation = [p for i, p in enumerate(files) if not i % VALIDATION_EVERY]
    return train, validation


def _texts(files: list[Path]) -> Iterator[str]:
    for path in files:
        yield read_text(path)


def train_bpe(files: list[Path], vocab_size: int, folder: Path) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``files``, save it in ``folder`` and reload it."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_texts(files), trainer=trainer, length=len(files))
    save_bos_tokenizer(core, folder)
    return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
