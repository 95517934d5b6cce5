"""Models and prompt sets: the named inputs that runs refer to (functions over a Connection).

Names are unique; a duplicate name is a ``Conflict`` naming the fix. A prompt set is stored with
its pairs in order (``pair_index`` 0, 1, …) and a ``content_hash`` (sha256 of the canonical JSON
of its pairs) so two sets with the same content are recognisable. A prompt set that runs refer
to cannot be deleted (the foreign key is RESTRICT; the store explains first).
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.sql.dml import Insert, Update

from storage.columns import checked_json, dump_json, utc_now
from storage.errors import Conflict, InvalidInput, NotFound
from storage.orm import models, prompt_pairs, prompt_sets, runs
from storage.records import ModelRecord, PairIn, PairRecord, PromptSetRecord

MODELS_HINT = "list models with `headlab models list`"
PROMPTS_HINT = "list prompt sets with `headlab prompts list`"
NAME_MAX = 120
INSERT_CHUNK = 2000  # pair rows per INSERT
_PAIR_TEXT_FIELDS = ("clean", "corrupted", "correct", "incorrect")


def check_name(name: str, what: str) -> None:
    """Refuse a name that would not print as one plain line: empty, padded with spaces, longer
    than ``NAME_MAX``, or holding control or format characters (newlines, tabs, escapes)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"a {what} needs a non-empty name")
    hidden = sorted({c for c in name if unicodedata.category(c)[0] == "C"})
    if hidden:
        shown = ", ".join(repr(c) for c in hidden)
        raise InvalidInput(
            f"the {what} name {name!r} holds control characters ({shown}); use letters, digits, "
            "spaces and punctuation"
        )
    if name != name.strip():
        raise InvalidInput(f"the {what} name {name!r} starts or ends with spaces; remove them")
    if len(name) > NAME_MAX:
        raise InvalidInput(
            f"the {what} name is {len(name)} characters, more than {NAME_MAX}; choose a shorter one"
        )


def _model(row: Row[Any]) -> ModelRecord:
    m = row._mapping
    return ModelRecord(
        id=m["id"],
        name=m["name"],
        spec=m["spec"],
        facts=m["facts_json"],
        created_at=m["created_at"],
    )


def add_model(
    conn: Connection, name: str, spec: str, facts: dict[str, Any], replace: bool
) -> ModelRecord:
    if not spec:
        raise InvalidInput(f"a model needs a non-empty spec (got {spec!r})")
    check_name(name, "model")
    existing = conn.execute(select(models.c.id).where(models.c.name == name)).first()
    values = {"spec": spec, "facts_json": checked_json(dict(facts), f"model {name!r} facts")}
    if existing is not None and not replace:
        raise Conflict(
            f"a model named {name!r} already exists; choose another name or replace it "
            f"(replace=True, `--replace` on the command line)"
        )
    statement: Insert | Update
    if existing is not None:
        statement = update(models).where(models.c.id == existing.id).values(**values)
    else:
        statement = insert(models).values(name=name, created_at=utc_now(), **values)
    return _model(conn.execute(statement.returning(*models.c)).one())


def list_models(conn: Connection) -> list[ModelRecord]:
    return [_model(row) for row in conn.execute(select(models).order_by(models.c.name))]


def get_model(conn: Connection, name_or_spec: str) -> ModelRecord:
    row = conn.execute(select(models).where(models.c.name == name_or_spec)).first()
    if row is None:
        by_spec = select(models).where(models.c.spec == name_or_spec).order_by(models.c.id.desc())
        row = conn.execute(by_spec).first()
    if row is None:
        raise NotFound(f"no model is named or has the spec {name_or_spec!r}; {MODELS_HINT}")
    return _model(row)


def _prompt_set(row: Row[Any]) -> PromptSetRecord:
    m = row._mapping
    return PromptSetRecord(
        id=m["id"],
        name=m["name"],
        source=m["source"],
        model_spec=m["model_spec"],
        n_pairs=m["n_pairs"],
        content_hash=m["content_hash"],
        meta=m["meta_json"],
        created_at=m["created_at"],
    )


def _pair_row(name: str, index: int, pair: PairIn) -> dict[str, Any]:
    if not isinstance(pair, PairIn):
        raise InvalidInput(f"prompt set {name!r}, pair {index}: expected a PairIn")
    for field in _PAIR_TEXT_FIELDS:
        if not isinstance(getattr(pair, field), str):
            raise InvalidInput(f"prompt set {name!r}, pair {index}: {field} must be text")
    row = {f: getattr(pair, f) for f in (*_PAIR_TEXT_FIELDS, "correct_id", "incorrect_id")}
    meta = checked_json(dict(pair.meta), f"prompt set {name!r}, pair {index} meta")
    return {**row, "meta_json": meta}


def add_prompt_set(
    conn: Connection,
    name: str,
    pairs: Iterable[PairIn],
    source: str,
    model_spec: str | None,
    meta: dict[str, Any] | None,
) -> PromptSetRecord:
    """Store a set and its pairs, consumed and inserted ``INSERT_CHUNK`` at a time (so an
    iterator of pairs is never held whole). The caller's transaction makes it all or nothing."""
    check_name(name, "prompt set")
    if conn.execute(select(prompt_sets.c.id).where(prompt_sets.c.name == name)).first():
        raise Conflict(
            f"a prompt set named {name!r} already exists; choose another name or delete it "
            f"first (`headlab prompts delete {name}`)"
        )
    set_meta = checked_json(dict(meta or {}), f"prompt set {name!r} meta")
    set_id = conn.execute(
        insert(prompt_sets)
        .values(
            name=name,
            source=source,
            model_spec=model_spec,
            n_pairs=0,
            content_hash="",
            meta_json=set_meta,
            created_at=utc_now(),
        )
        .returning(prompt_sets.c.id)
    ).scalar_one()
    # content_hash: sha256 of dump_json(list of rows), fed one row at a time
    digest = hashlib.sha256(b"[")
    batch: list[dict[str, Any]] = []
    n = 0
    for n, pair in enumerate(pairs, start=1):
        row = _pair_row(name, n - 1, pair)
        digest.update((b"," if n > 1 else b"") + dump_json(row).encode())
        batch.append({**row, "pair_index": n - 1, "prompt_set_id": set_id})
        if len(batch) == INSERT_CHUNK:
            conn.execute(insert(prompt_pairs), batch)
            batch = []
    if n == 0:
        raise InvalidInput(f"prompt set {name!r} has no pairs; give at least one")
    if batch:
        conn.execute(insert(prompt_pairs), batch)
    digest.update(b"]")
    record = conn.execute(
        update(prompt_sets)
        .where(prompt_sets.c.id == set_id)
        .values(n_pairs=n, content_hash=digest.hexdigest())
        .returning(*prompt_sets.c)
    ).one()
    return _prompt_set(record)


def list_prompt_sets(conn: Connection) -> list[PromptSetRecord]:
    query = select(prompt_sets).order_by(prompt_sets.c.name)
    return [_prompt_set(row) for row in conn.execute(query)]


def get_prompt_set(conn: Connection, name_or_id: str | int) -> PromptSetRecord:
    row = None
    if isinstance(name_or_id, str):
        row = conn.execute(select(prompt_sets).where(prompt_sets.c.name == name_or_id)).first()
    if row is None and str(name_or_id).isdigit():
        by_id = select(prompt_sets).where(prompt_sets.c.id == int(name_or_id))
        row = conn.execute(by_id).first()
    if row is None:
        raise NotFound(f"no prompt set is named or has the id {name_or_id!r}; {PROMPTS_HINT}")
    return _prompt_set(row)


def get_pairs(conn: Connection, prompt_set_id: int) -> list[PairRecord]:
    get_prompt_set(conn, prompt_set_id)  # NotFound with the hint
    query = (
        select(prompt_pairs)
        .where(prompt_pairs.c.prompt_set_id == prompt_set_id)
        .order_by(prompt_pairs.c.pair_index)
    )
    names = [f.name for f in dataclasses.fields(PairIn) if f.name != "meta"]
    return [
        PairRecord(
            **{n: row._mapping[n] for n in names},
            meta=row.meta_json,
            index=row.pair_index,
        )
        for row in conn.execute(query)
    ]


def delete_prompt_set(conn: Connection, name: str) -> None:
    record = get_prompt_set(conn, name)
    used_by = conn.execute(
        select(runs.c.id).where(runs.c.prompt_set_id == record.id).order_by(runs.c.id)
    ).scalars()
    run_ids = list(used_by)
    if run_ids:
        shown = ", ".join(str(i) for i in run_ids[:10]) + (" …" if len(run_ids) > 10 else "")
        raise Conflict(
            f"prompt set {record.name!r} is used by {len(run_ids)} run(s) ({shown}); delete "
            f"those runs first (`headlab runs delete RUN`) to keep their results reproducible"
        )
    conn.execute(delete(prompt_pairs).where(prompt_pairs.c.prompt_set_id == record.id))
    conn.execute(delete(prompt_sets).where(prompt_sets.c.id == record.id))
