"""Reading and writing prompt files (CSV and JSONL). Torch-free.

Columns (CSV header / JSON keys): ``clean``, ``corrupted``, ``correct``, ``incorrect`` — all
required — and an optional ``meta`` (a JSON object; in CSV a cell holding JSON text).
Any other column is an error.

Answer rule: an answer written ``#<digits>`` (e.g. ``#464``) is a token id; in JSONL a JSON
integer is a token id too. Anything else is the answer's text, which must tokenize to exactly one
token (with a leading space where the tokenizer needs one, e.g. ``" Mary"`` for GPT-2). So a
text answer that is literally ``#`` followed by digits must be given by its id.

Rows are numbered from 1 in error messages; in CSV, row N is on line N+1 (after the header).
Export writes ids back as ``#<id>`` and meta as JSON, so export -> import round-trips exactly.

Files are read row by row (``iter_prompt_file``), so an import holds one chunk of rows at a time;
a file larger than ``MAX_FILE_BYTES`` (50 MB, about 500k pairs of short prompts) is refused.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from storage.records import PairIn

REQUIRED = ("clean", "corrupted", "correct", "incorrect")
OPTIONAL = ("meta",)
FORMATS = ("csv", "jsonl")
MAX_FILE_BYTES = 50 * 2**20  # the largest prompt file imported (CLI, API and web upload)
PROGRESS_ROWS = 1024
_TOKEN_ID = re.compile(r"^#(\d+)$")


class PromptFileError(ValueError):
    """A prompt file cannot be read. The message names the row or column and the fix."""


@dataclass(frozen=True)
class Answer:
    """An answer as written: its text, or a token id (``text`` is then empty until decoded)."""

    text: str
    token_id: int | None = None


@dataclass(frozen=True)
class RawPair:
    row: int  # 1-based data row
    clean: str
    corrupted: str
    correct: Answer
    incorrect: Answer
    meta: dict[str, Any] = field(default_factory=dict)


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a message naming it stays one line."""
    return text if text.isprintable() else repr(text)[1:-1]


def shown_name(path: Path) -> str:
    """A file's name as messages print it (``printable``)."""
    return printable(path.name)


def format_for(path: Path, explicit: str | None = None) -> str:
    fmt = (explicit or path.suffix.lstrip(".")).lower()
    if fmt == "json":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise PromptFileError(
            f"{shown_name(path)}: cannot tell the format from {path.suffix!r}; use a .csv or "
            ".jsonl file (or pass --format csv|jsonl)"
        )
    return fmt


def _text_lines(handle: BinaryIO, name: str) -> Iterator[str]:
    """The file's lines as text, decoded one at a time (a UTF-8 BOM is dropped), split as
    ``open(newline="")`` splits them: at ``\n``, ``\r\n`` and a lone ``\r``."""
    for line_no, data in enumerate(handle, start=1):
        try:
            line = data.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise PromptFileError(
                f"{name}: line {line_no} has bytes that are not UTF-8 (byte {exc.start}: "
                f"{data[exc.start : exc.start + 1]!r}); save the file as UTF-8"
            ) from None
        if "\r" in line.rstrip("\r\n"):
            yield from io.StringIO(line, newline="")
        else:
            yield line


def _answer(value: Any, row: int, column: str) -> Answer:
    if isinstance(value, bool) or value is None:
        raise PromptFileError(f"row {row}: {column} is {value!r}; give the answer text or #<id>")
    if isinstance(value, int):
        return Answer("", value)
    if not isinstance(value, str):
        raise PromptFileError(f"row {row}: {column} must be text or a token id, got {value!r}")
    match = _TOKEN_ID.match(value)
    return Answer("", int(match.group(1))) if match else Answer(value)


def _meta(value: Any, row: int) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"row {row}: meta is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise PromptFileError(f"row {row}: meta must be a JSON object, got {value!r}")
    return value


def _check_columns(columns: list[str], where: str) -> None:
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    missing = [c for c in REQUIRED if c not in columns]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
        raise PromptFileError(
            f"{where}: {'; '.join(parts)}; the columns are {', '.join(REQUIRED)} "
            "(and optionally meta)"
        )


def _pair(record: dict[str, Any], row: int) -> RawPair:
    for column in ("clean", "corrupted"):
        if not isinstance(record[column], str):
            raise PromptFileError(f"row {row}: {column} must be text, got {record[column]!r}")
    return RawPair(
        row=row,
        clean=record["clean"],
        corrupted=record["corrupted"],
        correct=_answer(record["correct"], row, "correct"),
        incorrect=_answer(record["incorrect"], row, "incorrect"),
        meta=_meta(record.get("meta"), row),
    )


def _read_csv(lines: Iterator[str], name: str) -> Iterator[RawPair]:
    reader = csv.DictReader(lines)
    if reader.fieldnames is None:
        raise PromptFileError(f"{name} is empty; it needs a header row and at least one pair")
    _check_columns([c.strip() for c in reader.fieldnames], f"{name} header")
    for row, record in enumerate(reader, start=1):
        if None in record or any(v is None for v in record.values()):
            raise PromptFileError(
                f"row {row} (line {reader.line_num}): has a different number of cells than the "
                "header; quote cells that contain commas"
            )
        yield _pair({k.strip(): v for k, v in record.items()}, row)


def _read_jsonl(lines: Iterator[str]) -> Iterator[RawPair]:
    row = 0
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(
                f"row {row} (line {line_no}): not valid JSON ({exc.msg})"
            ) from None
        if not isinstance(record, dict):
            raise PromptFileError(f"row {row} (line {line_no}): expected a JSON object")
        _check_columns(list(record), f"row {row} (line {line_no})")
        yield _pair(record, row)


def check_file_size(size: int, name: str) -> None:
    """Refuse a prompt file larger than ``MAX_FILE_BYTES``."""
    if size > MAX_FILE_BYTES:
        raise PromptFileError(
            f"{name} is {size / 2**20:.1f} MB, more than the {MAX_FILE_BYTES // 2**20} MB limit "
            "for a prompt file; split it into several files and import each as its own set"
        )


def iter_prompt_file(
    path: Path, fmt: str | None = None, progress: Callable[[int, int], None] | None = None
) -> Iterator[RawPair]:
    """Parse a CSV / JSONL prompt file row by row, holding one row at a time; raises
    PromptFileError naming the row and the fix (when the bad row is reached, and for an empty
    file at the end). ``progress(bytes_read, file_bytes)`` is called every ``PROGRESS_ROWS``
    rows and at the end."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{printable(str(path))}: no such file")
    fmt = format_for(path, fmt)
    size = path.stat().st_size
    name = shown_name(path)
    check_file_size(size, name)
    with path.open("rb") as handle:
        lines = _text_lines(handle, name)
        rows = _read_csv(lines, name) if fmt == "csv" else _read_jsonl(lines)
        n = 0
        for n, pair in enumerate(rows, start=1):
            yield pair
            if progress is not None and n % PROGRESS_ROWS == 0:
                progress(handle.tell(), size)
        if n == 0:
            raise PromptFileError(f"{name} has no pairs; add at least one row")
        if progress is not None:
            progress(size, size)


def read_prompt_file(path: Path, fmt: str | None = None) -> list[RawPair]:
    """Every row of a CSV / JSONL prompt file (``iter_prompt_file`` as a list)."""
    return list(iter_prompt_file(path, fmt))


def _answer_cell(text: str, token_id: int | None) -> str:
    return f"#{token_id}" if token_id is not None else text


def export_rows(pairs: list[PairIn]) -> list[dict[str, Any]]:
    return [
        {
            "clean": p.clean,
            "corrupted": p.corrupted,
            "correct": _answer_cell(p.correct, p.correct_id),
            "incorrect": _answer_cell(p.incorrect, p.incorrect_id),
            "meta": dict(p.meta),
        }
        for p in pairs
    ]


def write_prompt_file(pairs: list[PairIn], fmt: str) -> str:
    """The text of a prompt file holding ``pairs`` (``fmt``: csv or jsonl)."""
    if fmt not in FORMATS:
        raise PromptFileError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    rows = export_rows(pairs)
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=[*REQUIRED, *OPTIONAL], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {**r, "meta": json.dumps(r["meta"], ensure_ascii=False) if r["meta"] else ""}
        )
    return out.getvalue()
