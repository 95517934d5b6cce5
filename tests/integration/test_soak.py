"""The fault soak (tests/integration/soak.py) at test size: ≥50 runs, SIGKILLs and a full disk on
SQLite; SIGKILLs and dropped database connections on a real PostgreSQL server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.soak import soak


@pytest.mark.slow
def test_soak_loses_and_half_writes_nothing(tmp_path: Path) -> None:
    report = soak(tmp_path / "home", tmp_path / "logs", runs=51, kills=15, kill_every_s=2.5, seed=1)
    logs = "\n".join(p.read_text()[-1500:] for p in sorted((tmp_path / "logs").glob("*.log")))
    assert report.problems == [], f"{report.as_json()}\n{logs}"
    assert report.lost == 0 and report.half_written == 0
    assert report.orphans == 0 and report.leftovers == []
    assert report.db_check_ok
    assert report.kills == 15 and report.kills_mid_run >= 1
    assert report.killed_runs_failed >= len(report.killed_runs)
    assert sum(report.statuses.values()) == 51
    assert report.statuses.get("FINISHED", 0) >= 25  # the queue is worked, not only failed
    if os.geteuid() == 0:
        assert report.disk_full.startswith("full for"), report.disk_full


@pytest.mark.slow
def test_soak_on_postgresql_with_dropped_connections(tmp_path: Path, pg_server) -> None:
    database = pg_server.create_database()
    report = soak(
        tmp_path / "home",
        tmp_path / "logs",
        runs=30,
        kills=6,
        kill_every_s=2.0,
        seed=2,
        disk_full_s=2.0,
        db_url=pg_server.url(database),
        drop_connections=lambda: pg_server.terminate_connections(database),
        drop_every_s=2.0,
    )
    logs = "\n".join(p.read_text()[-1500:] for p in sorted((tmp_path / "logs").glob("*.log")))
    assert report.problems == [], f"{report.as_json()}\n{logs}"
    assert report.database == "postgresql"
    assert report.lost == 0 and report.half_written == 0
    assert report.orphans == 0 and report.leftovers == [] and report.db_check_ok
    assert report.kills == 6 and report.connection_drops >= 5 and report.connections_dropped >= 5
    assert sum(report.statuses.values()) == 30
    assert report.statuses.get("FINISHED", 0) >= 15
