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
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.records import PairIn

REQUIRED = ("clean", "corrupted", "correct", "incorrect")
OPTIONAL = ("meta",)
FORMATS = ("csv", "jsonl")
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


def format_for(path: Path, explicit: str | None = None) -> str:
    fmt = (explicit or path.suffix.lstrip(".")).lower()
    if fmt == "json":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise PromptFileError(
            f"{path.name}: cannot tell the format from {path.suffix!r}; use a .csv or .jsonl "
            "file (or pass --format csv|jsonl)"
        )
    return fmt


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PromptFileError(
            f"{name}: line {line} has bytes that are not UTF-8 (byte {exc.start}: "
            f"{data[exc.start : exc.start + 1]!r}); save the file as UTF-8"
        ) from None


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


def _read_csv(text: str, name: str) -> list[RawPair]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        raise PromptFileError(f"{name} is empty; it needs a header row and at least one pair")
    _check_columns([c.strip() for c in reader.fieldnames], f"{name} header")
    pairs = []
    for row, record in enumerate(reader, start=1):
        if None in record or any(v is None for v in record.values()):
            raise PromptFileError(
                f"row {row} (line {reader.line_num}): has a different number of cells than the "
                "header; quote cells that contain commas"
            )
        pairs.append(_pair({k.strip(): v for k, v in record.items()}, row))
    return pairs


def _read_jsonl(text: str, name: str) -> list[RawPair]:
    pairs = []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    for row, (line_no, line) in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(
                f"row {row} (line {line_no}): not valid JSON ({exc.msg})"
            ) from None
        if not isinstance(record, dict):
            raise PromptFileError(f"row {row} (line {line_no}): expected a JSON object")
        _check_columns(list(record), f"row {row} (line {line_no})")
        pairs.append(_pair(record, row))
    return pairs


def read_prompt_file(path: Path, fmt: str | None = None) -> list[RawPair]:
    """Parse a CSV / JSONL prompt file; raises PromptFileError naming the row and the fix."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path}: no such file")
    fmt = format_for(path, fmt)
    text = _decode(path.read_bytes(), path.name)
    pairs = _read_csv(text, path.name) if fmt == "csv" else _read_jsonl(text, path.name)
    if not pairs:
        raise PromptFileError(f"{path.name} has no pairs; add at least one row")
    return pairs


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
