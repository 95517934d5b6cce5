"""Structural validation of an uploaded prompt-pair file, torch-free (runs in the web process).

Accepted formats: CSV with a header row, JSON Lines (one object per line) or a JSON list of
objects. Required columns: ``clean``, ``corrupted``, ``correct``, ``incorrect``; optional
``correct_id`` / ``incorrect_id`` (integers); any other column goes into the pair's ``meta``.

Checked here: encoding (UTF-8), empty files, missing columns, empty fields, correct == incorrect,
non-integer ids and duplicate pairs — each error names the row (1-based data row; for CSV also
the line) and the column. Tokenizer-level checks (clean and corrupted of equal token length,
single-token answers) need the model's tokenizer and so run in the worker, where
``build_pair_batch`` names the offending pair index.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from storage.records import PairIn

REQUIRED = ("clean", "corrupted", "correct", "incorrect")
ID_COLUMNS = ("correct_id", "incorrect_id")
MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class RowError:
    row: int | None  # 1-based data row; None for file-level errors
    column: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": "" if self.row is None else self.row,
            "column": self.column or "",
            "error": self.message,
        }


@dataclass(frozen=True)
class ParsedPrompts:
    pairs: list[PairIn]
    errors: list[RowError]


def decode_upload(contents: str) -> bytes:
    """The bytes of a ``dcc.Upload`` value (``data:<mime>;base64,<data>``)."""
    _, _, payload = contents.partition(",")
    return base64.b64decode(payload)


def _records(filename: str, text: str) -> tuple[list[dict[str, Any]], int]:
    """Rows as dicts, and the line offset of data row 1 (for CSV: the header is line 1)."""
    lower = filename.lower()
    if lower.endswith(".jsonl"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise ValueError(
                    f"line {number}: expected a JSON object, got {type(value).__name__}"
                )
            rows.append(value)
        return rows, 0
    if lower.endswith(".json"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError("a .json prompt file must be a list of objects")
        return value, 0
    if lower.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        return [dict(r) for r in reader], 1
    raise ValueError("unsupported file type: upload a .csv, .jsonl or .json file")


def _check_row(index: int, row: dict[str, Any], line_offset: int) -> list[RowError]:
    errors = []
    where = f" (line {index + line_offset})" if line_offset else ""
    for column in REQUIRED:
        value = row.get(column)
        if value is None or str(value).strip() == "":
            errors.append(RowError(index, column, f"empty {column!r}{where}: every pair needs it"))
    for column in ID_COLUMNS:
        value = row.get(column)
        if value not in (None, "") and not str(value).strip().lstrip("-").isdigit():
            errors.append(RowError(index, column, f"{column} must be an integer token id{where}"))
    if row.get("correct") not in (None, "") and row.get("correct") == row.get("incorrect"):
        errors.append(RowError(index, "incorrect", f"correct and incorrect are equal{where}"))
    return errors


def _pair(row: dict[str, Any]) -> PairIn:
    meta = {k: v for k, v in row.items() if k not in REQUIRED + ID_COLUMNS and k is not None}
    ids = {c: int(str(row[c]).strip()) for c in ID_COLUMNS if row.get(c) not in (None, "")}
    return PairIn(
        clean=str(row["clean"]),
        corrupted=str(row["corrupted"]),
        correct=str(row["correct"]),
        incorrect=str(row["incorrect"]),
        meta=meta,
        **ids,
    )


def parse_prompt_file(filename: str, data: bytes) -> ParsedPrompts:
    """Parse and check a prompt file; ``errors`` is empty when every row is good."""
    if not data.strip():
        return ParsedPrompts([], [RowError(None, None, "the file is empty")])
    if len(data) > MAX_BYTES:
        return ParsedPrompts([], [RowError(None, None, "the file is larger than 50 MB")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8 text (bad byte at offset {exc.start}); save the file as UTF-8"
        return ParsedPrompts([], [RowError(None, None, msg)])
    try:
        rows, line_offset = _records(filename, text)
    except ValueError as exc:
        return ParsedPrompts([], [RowError(None, None, str(exc))])
    if not rows:
        return ParsedPrompts([], [RowError(None, None, "the file has no prompt rows")])
    missing = [c for c in REQUIRED if c not in set().union(*(r.keys() for r in rows))]
    if missing:
        msg = f"missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}"
        return ParsedPrompts([], [RowError(None, None, msg)])
    errors: list[RowError] = []
    seen: dict[tuple[str, ...], int] = {}
    for index, row in enumerate(rows, start=1):
        row_errors = _check_row(index, row, line_offset)
        errors.extend(row_errors)
        key = tuple(str(row.get(c, "")) for c in REQUIRED)
        if not row_errors and key in seen:
            errors.append(RowError(index, "clean", f"duplicate of row {seen[key]}"))
        seen.setdefault(key, index)
    pairs = [] if errors else [_pair(r) for r in rows]
    return ParsedPrompts(pairs, errors)
