"""Structural validation of an uploaded prompt-pair file, torch-free (runs in the web process).

Accepted formats: CSV with a header row, JSON Lines (one object per line) or a JSON list of
objects. Required columns: ``clean``, ``corrupted``, ``correct``, ``incorrect``; optional
``meta`` (a JSON object; in CSV a cell of JSON text) and ``correct_id`` / ``incorrect_id``
(integers). An answer written ``#<id>`` is a token id, as in ``analysis.prompts.files`` (the
format the CLI imports); any other column is an error.

Checked here: encoding (UTF-8), empty files, missing or unknown columns, empty fields,
correct == incorrect, non-integer ids, meta that is not a JSON object and duplicate pairs — each
error names the row (1-based data row; for CSV also the line) and the column. Tokenizer-level
checks (clean and corrupted of equal token length, single-token answers, the model's context)
need the tokenizer and run in the worker (a ``prompts-import`` run), whose errors name the same
row numbers.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from analysis.prompts.files import MAX_FILE_BYTES
from storage.records import PairIn

REQUIRED = ("clean", "corrupted", "correct", "incorrect")
ID_COLUMNS = ("correct_id", "incorrect_id")
KNOWN = (*REQUIRED, *ID_COLUMNS, "meta")


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
    if _meta(row.get("meta")) is None:
        errors.append(RowError(index, "meta", f"meta must be a JSON object{where}"))
    return errors


def _meta(value: Any) -> dict[str, Any] | None:
    """The meta cell as a dict ({} when empty); None when it is not a JSON object."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def _pair(row: dict[str, Any]) -> PairIn:
    meta = _meta(row.get("meta")) or {}
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
    if len(data) > MAX_FILE_BYTES:
        msg = f"the file is larger than {MAX_FILE_BYTES // 2**20} MB; split it into several sets"
        return ParsedPrompts([], [RowError(None, None, msg)])
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
    columns = set().union(*(r.keys() for r in rows))
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        msg = f"missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}"
        return ParsedPrompts([], [RowError(None, None, msg)])
    unknown = sorted(str(c) for c in columns if c not in KNOWN)
    if unknown:
        msg = (
            f"unknown column(s) {', '.join(unknown)}; the columns are {', '.join(REQUIRED)} and "
            f"optionally meta (a JSON object), {', '.join(ID_COLUMNS)}"
        )
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
