"""Migrations: ORM == migrated schema; old databases upgrade with rows; bad schemas refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from storage import migrate
from storage.engine import make_engine
from storage.errors import SchemaError
from storage.orm import metadata
from storage.records import EdgeIn, NodeIn, RunOutput, RunStatus
from storage.store import ResultStore
from tests.storage.store_fixtures import head_rows


def test_revisions_are_linear_and_head_is_newest() -> None:
    assert migrate.known_revisions() == ["0001", "0002", "0003"]
    assert migrate.head_revision() == "0003"


def test_orm_metadata_equals_migrated_schema(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_upgrade_is_idempotent_and_reports_revisions(db_url: str) -> None:
    assert migrate.current_revision(db_url) is None
    assert migrate.upgrade(db_url) == "0003"
    assert migrate.upgrade(db_url) == "0003"
    assert migrate.check_schema(db_url) == "0003"


def _insert_0001_rows(db_url: str) -> None:
    """Rows written the way a headlab at schema 0001 wrote them (no summary_json column)."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat(sep=" ").replace("+00:00", "")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO prompt_sets (id, name, source, model_spec, n_pairs, content_hash,"
                " meta_json, created_at) VALUES (1, 'ioi', 'test', NULL, 1, 'h', '{}', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO prompt_pairs (prompt_set_id, pair_index, clean, corrupted, correct,"
                " incorrect, meta_json) VALUES (1, 0, 'a b', 'c d', ' x', ' y', '{}')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO runs (id, kind, status, config_json, model_spec, prompt_set_id,"
                " versions_json, code_version, progress, message, cancel_requested, created_at,"
                " started_at, finished_at, heartbeat_at) VALUES (1, 'head_stats', 'FINISHED',"
                " :config, 'zoo:induction-2l', 1, '{}', 'old', 1.0, 'finished', false, :now, :now,"
                " :now, :now)"
            ),
            {"config": json.dumps({"kind": "head_stats"}), "now": now},
        )
        for head in range(4):
            conn.execute(
                text(
                    "INSERT INTO head_results (run_id, metric, layer, head, value)"
                    " VALUES (1, 'entropy', 0, :head, :value)"
                ),
                {"head": head, "value": head / 2},
            )
        if conn.dialect.name == "postgresql":  # explicit ids do not move PostgreSQL's sequences
            for table in ("prompt_sets", "runs"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1)"))
    engine.dispose()


def test_old_database_upgrades_and_keeps_its_rows(tmp_path: Path, db_url: str) -> None:
    assert migrate.upgrade(db_url, "0001") == "0001"
    _insert_0001_rows(db_url)
    with pytest.raises(SchemaError, match=r"out of date.*`headlab db upgrade`"):
        migrate.check_schema(db_url)

    assert migrate.upgrade(db_url) == "0003"
    migrate.check_schema(db_url)
    with ResultStore(db_url, tmp_path / "artifacts") as store:
        run = store.get_run(1)
        assert run.status is RunStatus.FINISHED and run.summary == {}
        assert run.started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        frame = store.head_results(1, "entropy")
        assert frame["value"].tolist() == [0.0, 0.5, 1.0, 1.5]
        assert store.get_pairs(store.get_prompt_set("ioi").id)[0].correct == " x"
        # The new parts of the schema work on the upgraded database.
        assert store.nodes(1).empty
        new_id = store.enqueue_run("circuit", {}, "zoo:induction-2l", 1, {}, "new").id
        store.claim_run(new_id, "w")
        output = RunOutput(
            head_results=head_rows(),
            edges=[EdgeIn("a0.h1", "a1.h2<k>", 0.7, True)],
            nodes=[NodeIn("a0.h1", 0, 1, 0.7, True)],
            summary={"area": 0.9},
        )
        assert store.finish_run(new_id, output).summary == {"area": 0.9}
        assert store.nodes(new_id)["name"].tolist() == ["a0.h1"]


def test_database_from_a_newer_schema_is_refused(tmp_path: Path, db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    for action in (migrate.check_schema, migrate.upgrade):
        with pytest.raises(SchemaError) as info:
            action(db_url)
        message = str(info.value)
        assert "'0099'" in message and "newer headlab" in message
        assert "older than the database" in message
    assert migrate.current_revision(db_url) == "0099"  # nothing was changed
    with ResultStore(db_url, tmp_path / "artifacts") as store, pytest.raises(SchemaError):
        store.check_schema()


def test_empty_and_missing_databases_are_not_initialised(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path}/missing.db"
    with pytest.raises(SchemaError, match=r"not initialised.*`headlab db upgrade`"):
        migrate.check_schema(missing)
    assert not (tmp_path / "missing.db").exists()  # checking does not create it
    empty = tmp_path / "empty.db"
    make_engine(f"sqlite:///{empty}").connect().close()
    assert empty.exists()
    with pytest.raises(SchemaError, match=r"not initialised.*`headlab db upgrade`"):
        migrate.check_schema(f"sqlite:///{empty}")


def test_foreign_database_is_not_mistaken_for_an_empty_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/other.db"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (id INTEGER)"))
    engine.dispose()
    with pytest.raises(SchemaError, match="not created by headlab"):
        migrate.check_schema(url)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    from storage.errors import StoreError

    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot use the database"):
        migrate.check_schema(f"sqlite:///{bogus}")


def test_database_checks_the_run_status_and_refuses_orphan_rows(db_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    insert_run = (
        "INSERT INTO runs (kind, status, config_json, model_spec, versions_json, code_version,"
        " progress, message, cancel_requested, created_at) VALUES ('k', :status, '{}', 'm', '{}',"
        " 'c', 0, '', false, '2026-01-01 00:00:00')"
    )
    with pytest.raises(IntegrityError, match="ck_runs_status_valid"), engine.begin() as conn:
        conn.execute(text(insert_run), {"status": "DONE"})
    with pytest.raises(IntegrityError, match="(?i)foreign key"), engine.begin() as conn:
        conn.execute(
            text("INSERT INTO head_results (run_id, metric, layer, value) VALUES (99, 'm', 0, 1)")
        )
    engine.dispose()
