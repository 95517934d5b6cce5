"""Fault soak: real workers SIGKILLed at random while the data disk fills up and frees.

A queue of ``--runs`` heads / dla / throughput runs on ``zoo:induction-2l`` is worked by
``--workers`` worker processes; one of them (one holding a run when there is one) is
SIGKILLed every ``--kill-every-s`` (±50 %) and
restarted, ``--kills`` times; once a third of the runs have ended, the data directory (a tmpfs
when run as root) is filled to the last byte for ``--disk-full-s`` seconds. Afterwards every run
must be terminal, no run that did not finish may hold results, every finished run's results and
artifacts must be intact, and nothing may be left over (orphaned files, pending lists, temp
files, work folders); ``headlab db check`` must pass. Prints the report as JSON and exits 1 if
anything was lost or half-written.

With ``--database postgresql`` the store is a database of a throwaway PostgreSQL server
(``tests/pg_server.py``, needs the Debian ``postgresql`` package) whose client connections are
all dropped by the server every ``--drop-every-s`` (±50 %), on top of the kills and the full disk.

Run: ``.venv/bin/python bench/soak.py [--runs 200 --kills 60] [--database postgresql]``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.soak import soak  # noqa: E402
from tests.pg_server import PostgresServer  # noqa: E402


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """soak() arguments for the chosen database: none for SQLite, a live server otherwise."""
    if args.database == "sqlite":
        yield {}
        return
    server = PostgresServer().start()
    try:
        name = server.create_database()
        yield {
            "db_url": server.url(name),
            "drop_connections": lambda: server.terminate_connections(name),
        }
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--kill-every-s", type=float, default=4.0)
    parser.add_argument("--disk-full-s", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--drop-every-s", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="headlab-soak-") as scratch, _database(args) as db:
        report = soak(
            Path(scratch) / "home",
            Path(scratch) / "logs",
            runs=args.runs,
            workers=args.workers,
            kills=args.kills,
            kill_every_s=args.kill_every_s,
            disk_full_s=args.disk_full_s,
            seed=args.seed,
            drop_every_s=args.drop_every_s,
            **db,
        )
        print(report.as_json())
        if report.problems:
            for log in sorted((Path(scratch) / "logs").glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-2000:]}", file=sys.stderr)
    return 1 if report.problems or report.lost or report.half_written else 0


if __name__ == "__main__":
    sys.exit(main())
