"""A throwaway PostgreSQL server for the tests: ``initdb`` and ``pg_ctl`` from the Debian
``postgresql`` package (``make system-deps`` installs it), a data folder under the system temp
dir, a free loopback port and trust authentication. One server per test session; each test gets
a fresh database. As root the server runs as the ``postgres`` user (PostgreSQL refuses root).

Durability is switched off (``fsync=off``): the tests check behaviour, not crash safety of the
server itself. The soak's dropped connections use ``terminate_connections``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

INSTALL_HINT = "install PostgreSQL's server binaries with `make system-deps` (Debian: postgresql)"


def find_bin_dir() -> Path:
    """The folder holding initdb/pg_ctl: $HEADLAB_PG_BIN, then /usr/lib/postgresql/<newest>/bin,
    then the PATH."""
    candidates = [os.environ.get("HEADLAB_PG_BIN", "")]
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    candidates += [str(p) for p in reversed(versions)]
    on_path = shutil.which("initdb")
    candidates += [str(Path(on_path).parent)] if on_path else []
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise RuntimeError(f"no PostgreSQL server binaries (initdb, pg_ctl) found; {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """Start with ``start()``, stop with ``stop()``; ``url(db)`` for SQLAlchemy."""

    def __init__(self) -> None:
        self.bin = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="headlab-pg-"))
        self.port = _free_port()
        self.user = "postgres"
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o755)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        data = self.root / "data"
        initdb = [str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust"]
        self._run(*initdb, "-E", "UTF8", "--no-sync", "--locale=C.UTF-8")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = str(self.root / "server.log")
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(data), "-o", options, "-l", log, "-w", "start")
        return self

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            data = str(self.root / "data")
            self._run(str(self.bin / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        dsn = f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"
        return psycopg.connect(dsn, autocommit=True)

    def create_database(self) -> str:
        """A new, empty database; its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def terminate_connections(self, database: str) -> int:
        """Drop every client connection to ``database`` (as a failing network would); how many."""
        query = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()"
        )
        with self._admin() as conn:
            row = conn.execute(query, (database,)).fetchone()
        return int(row[0]) if row else 0
