"""Models and prompt sets: the named inputs that runs refer to (functions over a Connection).

Names are unique; a duplicate name is a ``Conflict`` naming the fix. A prompt set is stored with
its pairs in order (``pair_index`` 0, 1, …) and a ``content_hash`` (sha256 of the canonical JSON
of its pairs) so two sets with the same content are recognisable. A prompt set that runs refer
to cannot be deleted (the foreign key is RESTRICT; the store explains first).
"""

from __future__ import annotations

import dataclasses
import hashlib
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
_PAIR_TEXT_FIELDS = ("clean", "corrupted", "correct", "incorrect")


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
    if not name or not spec:
        raise InvalidInput(f"a model needs a non-empty name and spec (got {name!r}, {spec!r})")
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


def _pair_rows(name: str, pairs: list[PairIn]) -> list[dict[str, Any]]:
    if not pairs:
        raise InvalidInput(f"prompt set {name!r} has no pairs; give at least one")
    rows = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, PairIn):
            raise InvalidInput(f"prompt set {name!r}, pair {index}: expected a PairIn")
        for field in _PAIR_TEXT_FIELDS:
            if not isinstance(getattr(pair, field), str):
                raise InvalidInput(f"prompt set {name!r}, pair {index}: {field} must be text")
        row = {f: getattr(pair, f) for f in (*_PAIR_TEXT_FIELDS, "correct_id", "incorrect_id")}
        meta = checked_json(dict(pair.meta), f"prompt set {name!r}, pair {index} meta")
        rows.append({**row, "pair_index": index, "meta_json": meta})
    return rows


def add_prompt_set(
    conn: Connection,
    name: str,
    pairs: list[PairIn],
    source: str,
    model_spec: str | None,
    meta: dict[str, Any] | None,
) -> PromptSetRecord:
    if not name:
        raise InvalidInput("a prompt set needs a non-empty name")
    rows = _pair_rows(name, pairs)
    if conn.execute(select(prompt_sets.c.id).where(prompt_sets.c.name == name)).first():
        raise Conflict(
            f"a prompt set named {name!r} already exists; choose another name or delete it "
            f"first (`headlab prompts delete {name}`)"
        )
    content = dump_json([{k: v for k, v in r.items() if k != "pair_index"} for r in rows])
    record = conn.execute(
        insert(prompt_sets)
        .values(
            name=name,
            source=source,
            model_spec=model_spec,
            n_pairs=len(rows),
            content_hash=hashlib.sha256(content.encode()).hexdigest(),
            meta_json=checked_json(dict(meta or {}), f"prompt set {name!r} meta"),
            created_at=utc_now(),
        )
        .returning(*prompt_sets.c)
    ).one()
    conn.execute(insert(prompt_pairs), [{**r, "prompt_set_id": record.id} for r in rows])
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
