"""Column types shared by the ORM and the migrations.

- ``UTCDateTime``: every ``*_at`` column. Values are timezone-aware UTC datetimes in Python;
  SQLite stores them as ISO text without an offset (always UTC), PostgreSQL as ``timestamptz``.
  ISO text in one fixed format sorts and compares correctly in SQL.
- ``JSONText``: every ``*_json`` column. JSON as text (sorted keys, no NaN/Infinity), decoded to
  Python objects on read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator

from storage.errors import InvalidInput


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: headlab stores timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def dump_json(value: Any) -> str:
    """Canonical JSON text; NaN/Infinity are refused (they are not JSON)."""
    return json.dumps(value, sort_keys=True, allow_nan=False, separators=(",", ":"))


class JSONText(TypeDecorator[Any]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else dump_json(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


def checked_json(value: Any, what: str) -> Any:
    """``value`` if it can be stored as JSON text, else InvalidInput naming ``what``."""
    try:
        dump_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{what} cannot be stored as JSON ({exc}); use plain numbers (no NaN or Infinity), "
            f"strings, booleans, lists and dicts with string keys"
        ) from None
    return value
