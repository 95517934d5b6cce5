"""``ResultStore``: the one entry point to headlab's durable state.

It owns a database (SQLite or PostgreSQL, see ``storage.engine``) and a content-addressed
artifact directory (``storage.artifacts``), and hands out frozen records (``storage.records``)
and pandas DataFrames, never ORM rows. Each method is one transaction; the SQL lives in
``runs_repo`` (run lifecycle), ``catalog_repo`` (models, prompt sets) and ``results_repo``
(per-head results, artifacts, circuits).

A run finishes atomically: ``finish_run`` validates the whole output, copies artifact files in
first (content-addressed, so an orphan left by a crash is harmless), then inserts every result
row (and any prompt set or model the run creates: ``RunOutput.prompt_set`` / ``.model``) and
flips the run to FINISHED in ONE transaction — and only if the run is still RUNNING, so
a cancelled or reaped run never gets results. A crash at any point leaves no partial results.
Each file a run puts is first listed under ``artifacts/.pending`` (``PendingFiles``); the list
is cleared after the commit. ``recover_after_crashes`` deletes, for runs that have ended, the
listed files no row references, plus half-copied temp files and the run's work folder — so a
worker killed at any point leaves nothing behind once its run is reaped.

The store does not verify the schema when constructed (``headlab db upgrade`` must be able to
open it); long-lived processes call ``check_schema()`` on start.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import catalog_repo, results_repo, runs_repo, sweeps_repo
from storage.artifacts import ArtifactFiles, PendingFiles
from storage.columns import checked_json, utc_now
from storage.engine import Database
from storage.errors import Conflict, CorruptArtifact, InvalidInput, NotFound
from storage.grids import HeadGrid, PositionGrid, ResultTables, split_results
from storage.records import (
    ArtifactRecord,
    ModelRecord,
    PairIn,
    PairRecord,
    PromptSetRecord,
    RunOutput,
    RunRecord,
    RunStatus,
    SweepChild,
    SweepRecord,
)
from storage.settings import Settings
from storage.uploads import Uploads

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Connection


def _queued_values(
    kind: str,
    config: dict[str, Any],
    model_spec: str,
    prompt_set_id: int | None,
    versions: dict[str, str],
    code_version: str,
) -> dict[str, Any]:
    """The ``runs`` row of a new QUEUED run (``runs_repo.insert_queued``), its JSON checked."""
    if not kind:
        raise InvalidInput("a run needs a kind (e.g. 'head_stats')")
    return {
        "kind": kind,
        "config_json": checked_json(dict(config), f"the {kind} run config"),
        "model_spec": model_spec,
        "prompt_set_id": prompt_set_id,
        "versions_json": checked_json(dict(versions), "the package versions"),
        "code_version": code_version,
        "summary_json": {},
        "cancel_requested": False,
        "created_at": utc_now(),
    }


@dataclass
class Recovered:
    """What ``recover_after_crashes`` removed (paths relative to the data directory)."""

    files: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    work_folders: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files or self.temp_files or self.work_folders)


class ResultStore:
    def __init__(self, db_url: str, artifacts_dir: Path | str) -> None:
        self.db_url = db_url
        self._db = Database(db_url)
        self.files = ArtifactFiles(Path(artifacts_dir))
        self.pending = PendingFiles(Path(artifacts_dir))
        self.uploads = Uploads(Path(artifacts_dir) / "uploads")
        self.work_root = Path(artifacts_dir).parent / "work"

    @classmethod
    def from_settings(cls, settings: Settings) -> ResultStore:
        return cls(settings.db_url, settings.artifacts_dir)

    @property
    def artifacts_dir(self) -> Path:
        return self.files.root

    def check_schema(self) -> str:
        """Raise SchemaError (naming the fix) unless the schema is current; returns the revision."""
        from storage import migrate  # lazily: Alembic is only needed for this check

        return migrate.check_schema(self.db_url)

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- models and prompt sets -------------------------------------------------------------

    def add_model(
        self, name: str, spec: str, facts: dict[str, Any], replace: bool = False
    ) -> ModelRecord:
        with self._db.write() as conn:
            return catalog_repo.add_model(conn, name, spec, facts, replace)

    def list_models(self) -> list[ModelRecord]:
        with self._db.read() as conn:
            return catalog_repo.list_models(conn)

    def get_model(self, name_or_spec: str) -> ModelRecord:
        with self._db.read() as conn:
            return catalog_repo.get_model(conn, name_or_spec)

    def add_prompt_set(
        self,
        name: str,
        pairs: Iterable[PairIn],
        source: str,
        model_spec: str | None,
        meta: dict[str, Any] | None = None,
    ) -> PromptSetRecord:
        """Store a prompt set in one transaction; ``pairs`` may be an iterator (consumed in
        chunks). Any error leaves the store as it was."""
        with self._db.write() as conn:
            return catalog_repo.add_prompt_set(conn, name, pairs, source, model_spec, meta)

    def list_prompt_sets(self) -> list[PromptSetRecord]:
        with self._db.read() as conn:
            return catalog_repo.list_prompt_sets(conn)

    def get_prompt_set(self, name_or_id: str | int) -> PromptSetRecord:
        with self._db.read() as conn:
            return catalog_repo.get_prompt_set(conn, name_or_id)

    def get_pairs(self, prompt_set_id: int) -> list[PairRecord]:
        with self._db.read() as conn:
            return catalog_repo.get_pairs(conn, prompt_set_id)

    def delete_prompt_set(self, name: str) -> None:
        with self._db.write() as conn:
            catalog_repo.delete_prompt_set(conn, name)

    # -- run lifecycle -------------------------------------------------------------------

    def enqueue_run(
        self,
        kind: str,
        config: dict[str, Any],
        model_spec: str,
        prompt_set_id: int | None,
        versions: dict[str, str],
        code_version: str,
    ) -> RunRecord:
        values = _queued_values(kind, config, model_spec, prompt_set_id, versions, code_version)
        with self._db.write() as conn:
            if prompt_set_id is not None:
                catalog_repo.get_prompt_set(conn, prompt_set_id)  # NotFound with the hint
            return runs_repo.insert_queued(conn, values)

    def enqueue_sweep(
        self, name: str, kind: str, spec: dict[str, Any], children: list[SweepChild]
    ) -> tuple[SweepRecord, list[RunRecord]]:
        """A sweep and all its runs, QUEUED, in one transaction (all or none)."""
        rows = [
            _queued_values(
                kind,
                child.config,
                child.model_spec,
                child.prompt_set_id,
                child.versions,
                child.code_version,
            )
            for child in children
        ]
        with self._db.write() as conn:
            for child in children:
                if child.prompt_set_id is not None:
                    catalog_repo.get_prompt_set(conn, child.prompt_set_id)
            return sweeps_repo.add_sweep(conn, name, kind, spec, rows)

    def get_sweep(self, name_or_id: str | int) -> SweepRecord:
        with self._db.read() as conn:
            return sweeps_repo.get_sweep(conn, name_or_id)

    def list_sweeps(self, limit: int = 100) -> list[SweepRecord]:
        with self._db.read() as conn:
            return sweeps_repo.list_sweeps(conn, limit)

    def sweep_runs(self, sweep_id: int) -> list[RunRecord]:
        with self._db.read() as conn:
            return sweeps_repo.sweep_runs(conn, sweep_id)

    def claim_next_run(self, worker_id: str, kinds: list[str] | None = None) -> RunRecord | None:
        """Atomically take the oldest QUEUED run (of ``kinds``) and mark it RUNNING by us."""
        with self._db.write() as conn:
            return runs_repo.claim_next(conn, worker_id, kinds)

    def claim_run(self, run_id: int, worker_id: str) -> RunRecord:
        """Claim one specific QUEUED run (e.g. the CLI running it inline); Conflict otherwise."""
        now = utc_now()
        values = {
            "status": RunStatus.RUNNING.value,
            "worker_id": worker_id,
            "started_at": now,
            "heartbeat_at": now,
            "message": "started",
        }
        with self._db.write() as conn:
            run = runs_repo.transition(conn, run_id, (RunStatus.QUEUED,), values)
            if run is None:
                raise runs_repo.refuse(conn, run_id, "claim it (only QUEUED runs can be claimed)")
            return run

    def heartbeat(self, run_id: int, worker_id: str, progress: float, message: str) -> bool:
        """Record liveness and progress. True means stop: cancel was requested, or the run is no
        longer RUNNING under this worker (reaped, cancelled, deleted)."""
        with self._db.write() as conn:
            return runs_repo.heartbeat(conn, run_id, worker_id, progress, message)

    def finish_run(self, run_id: int, output: RunOutput) -> RunRecord:
        """Store a run's output and mark it FINISHED in one transaction (see module docstring)."""
        prepared = results_repo.prepare(run_id, output)  # InvalidInput before any write
        current = self.get_run(run_id)
        if current.status is not RunStatus.RUNNING:
            raise Conflict(f"run {run_id} is {current.status.value}; its results were not stored")
        stored = []
        for art in output.artifacts:
            saved = self.files.put(art.path, art.name, lambda rel: self.pending.add(run_id, rel))
            stored.append((art, saved.sha256, saved.size, saved.relpath))
        values = {
            "status": RunStatus.FINISHED.value,
            "progress": 1.0,
            "message": "finished",
            "summary_json": prepared.summary,
            "finished_at": utc_now(),
        }
        with self._db.write() as conn:
            run = runs_repo.transition(conn, run_id, (RunStatus.RUNNING,), values)
            if run is None:
                raise runs_repo.refuse(conn, run_id, "store its results (nothing was written)")
            results_repo.insert_all(conn, run_id, prepared, stored, self.files)
            _insert_catalog_entries(conn, output)  # Conflict on a taken name rolls all back
        self.pending.clear(run_id)
        return run

    def fail_run(self, run_id: int, error: str) -> RunRecord:
        """QUEUED/RUNNING → FAILED with ``error``; Conflict if the run already ended."""
        values = {"status": RunStatus.FAILED.value, "error": error, "finished_at": utc_now()}
        with self._db.write() as conn:
            run = runs_repo.transition(conn, run_id, (RunStatus.QUEUED, RunStatus.RUNNING), values)
            if run is None:
                raise runs_repo.refuse(conn, run_id, "mark it failed")
            return run

    def mark_cancelled(self, run_id: int) -> RunRecord:
        """The worker acknowledges a cancel: QUEUED/RUNNING → CANCELLED."""
        values = {
            "status": RunStatus.CANCELLED.value,
            "message": "cancelled",
            "finished_at": utc_now(),
        }
        with self._db.write() as conn:
            run = runs_repo.transition(conn, run_id, (RunStatus.QUEUED, RunStatus.RUNNING), values)
            if run is None:
                raise runs_repo.refuse(conn, run_id, "mark it cancelled")
            return run

    def request_cancel(self, run_id: int) -> RunRecord:
        """QUEUED → CANCELLED at once; RUNNING → cancel requested (the worker stops at its next
        progress report); a finished run → Conflict."""
        with self._db.write() as conn:
            return runs_repo.request_cancel(conn, run_id)

    def reap_stale(self, stale_after_s: float) -> list[int]:
        """Mark RUNNING runs whose heartbeat is older than ``stale_after_s`` FAILED; their ids."""
        with self._db.write() as conn:
            return runs_repo.reap_stale(conn, stale_after_s)

    def work_dir(self, run_id: int) -> Path:
        """A fresh, empty folder for the files a run writes before they are stored."""
        path = self.work_root / f"run{run_id}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def recover_after_crashes(self, stale_after_s: float) -> Recovered:
        """Remove what runs that ended without finishing left behind: stored files they put
        that no row references, temp files untouched for ``stale_after_s``, work folders."""
        done = Recovered()
        pending = self.pending.runs()
        ended = {run_id for run_id in pending if self._has_ended(run_id)}
        live = {rel for run_id, rels in pending.items() if run_id not in ended for rel in rels}
        if ended:
            # inside a write transaction, like delete_run: a concurrent finish_run re-checks
            # its files in its own write transaction and stores a removed one again
            with self._db.write() as conn:
                listed = {rel for run_id in ended for rel in pending[run_id]} - live
                for relpath in results_repo.unreferenced(conn, listed):
                    self.files.remove(relpath)
                    done.files.append(f"artifacts/{relpath}")
            for run_id in ended:
                self.pending.clear(run_id)
        done.temp_files = [f"artifacts/{p}" for p in self.files.remove_stale_temp(stale_after_s)]
        folders = sorted(self.work_root.glob("run*")) if self.work_root.is_dir() else []
        for folder in folders:
            number = folder.name.removeprefix("run")
            if number.isdigit() and self._has_ended(int(number)):
                shutil.rmtree(folder, ignore_errors=True)
                done.work_folders.append(f"work/{folder.name}")
        return done

    def _has_ended(self, run_id: int) -> bool:
        with contextlib.suppress(NotFound):
            return self.get_run(run_id).status.is_terminal
        return True  # deleted

    def delete_run(self, run_id: int) -> None:
        """Delete a run that is not RUNNING, with its results and now-unused artifact files."""
        with self._db.write() as conn:
            runs_repo.ensure_deletable(conn, run_id)
            orphans = results_repo.delete_for_run(conn, run_id)
            runs_repo.delete_row(conn, run_id)
            # Removed inside the write transaction so a concurrent finish_run (which re-checks
            # its files inside its own write transaction) cannot end up pointing at nothing.
            for relpath in orphans:
                self.files.remove(relpath)

    # -- reading runs and results ----------------------------------------------------------

    def get_run(self, run_id: int) -> RunRecord:
        with self._db.read() as conn:
            return runs_repo.get(conn, run_id)

    def list_runs(
        self,
        kind: str | None = None,
        status: RunStatus | str | None = None,
        limit: int = 100,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[RunRecord]:
        """Newest first (``oldest_first``: in queue order)."""
        with self._db.read() as conn:
            return runs_repo.list_runs(conn, kind, status, limit, offset, oldest_first)

    def count_runs(self, kind: str | None = None, status: RunStatus | str | None = None) -> int:
        with self._db.read() as conn:
            return runs_repo.count_runs(conn, kind, status)

    def metrics(self, run_id: int) -> list[str]:
        with self._db.read() as conn:
            runs_repo.get(conn, run_id)
            return results_repo.metrics(conn, run_id)

    def head_results(self, run_id: int, metric: str | None = None) -> pd.DataFrame:
        """Columns metric, layer, head, position, prompt, value (sorted in that order)."""
        with self._db.read() as conn:
            runs_repo.get(conn, run_id)
            return results_repo.head_frame(conn, run_id, metric)

    def result_tables(self, run_id: int) -> ResultTables:
        """The run's per-head rows sorted into aggregate / layer-level / per-position tables."""
        return split_results(run_id, self.head_results(run_id))

    def head_grid(self, run_id: int, metric: str) -> HeadGrid:
        """One metric's aggregate value per head; NotFound when the run has no such metric."""
        return self.result_tables(run_id).head_grid(metric)

    def position_grid(
        self, run_id: int, metric: str, head: tuple[int, int] | None = None
    ) -> PositionGrid:
        """One per-position metric per layer × position, for one head or summed over heads."""
        return self.result_tables(run_id).position_grid(metric, head)

    def artifacts(self, run_id: int) -> list[ArtifactRecord]:
        with self._db.read() as conn:
            runs_repo.get(conn, run_id)
            return results_repo.artifact_list(conn, run_id, self.files)

    def get_artifact(self, run_id: int, name: str) -> ArtifactRecord:
        """The artifact's record (its file is not read: see ``open_artifact``)."""
        with self._db.read() as conn:
            runs_repo.get(conn, run_id)
            return results_repo.artifact(conn, run_id, name, self.files)

    def open_artifact(self, run_id: int, name: str) -> ArtifactRecord:
        """The artifact's record once its file is checked against the stored size and sha256;
        ``CorruptArtifact`` (a ``StoreError``, one line) when it is missing or altered."""
        return self.verify_artifact(self.get_artifact(run_id, name))

    def check_artifacts(self) -> tuple[int, list[str], list[str]]:
        """(artifacts checked, problems, orphans): every artifact row's file verified (size and
        sha256), and the stored files no row references. An orphan is what a crash between
        writing a file and committing its rows leaves; harmless, reported so it can be removed
        (``remove_orphans``). Uploads and the temp folder are not artifacts."""
        with self._db.read() as conn:
            rows = results_repo.all_artifacts(conn, self.files)
        problems = []
        for artifact in rows:
            try:
                self.verify_artifact(artifact)
            except CorruptArtifact as exc:
                problems.append(str(exc))
        referenced = {Path(a.path).resolve() for a in rows}
        root = self.files.root
        stored = sorted(root.glob("[0-9a-f][0-9a-f]/*")) if root.is_dir() else []
        orphans = [
            str(p.relative_to(root))
            for p in stored
            if p.is_file() and p.resolve() not in referenced
        ]
        return len(rows), problems, orphans

    def remove_orphans(self, orphans: list[str]) -> None:
        for relpath in orphans:
            self.files.remove(relpath)

    @staticmethod
    def verify_artifact(artifact: ArtifactRecord) -> ArtifactRecord:
        what = f"run {artifact.run_id}'s artifact {artifact.name!r}"
        ArtifactFiles.verify(Path(artifact.path), artifact.sha256, artifact.size, what)
        return artifact

    def edges(self, run_id: int) -> pd.DataFrame:
        """Columns source, target, score, in_circuit."""
        with self._db.read() as conn:
            runs_repo.get(conn, run_id)
            return results_repo.edge_frame(conn, run_id)

    def nodes(self, run_id: int) -> pd.DataFrame:
        """Columns name, layer, head, score, in_circuit."""
        with self._db.read() as conn:
            runs_repo.get(conn, run_id)
            return results_repo.node_frame(conn, run_id)

    def count_result_rows(self, run_id: int) -> int:
        """Head results + edges + nodes + artifacts stored for a run."""
        with self._db.read() as conn:
            runs_repo.get(conn, run_id)
            return results_repo.count_rows(conn, run_id)


def _insert_catalog_entries(conn: Connection, output: RunOutput) -> None:
    """The prompt set / model a run creates, inside ``finish_run``'s transaction."""
    if output.prompt_set is not None:
        ps = output.prompt_set
        catalog_repo.add_prompt_set(conn, ps.name, ps.pairs, ps.source, ps.model_spec, ps.meta)
    if output.model is not None:
        m = output.model
        catalog_repo.add_model(conn, m.name, m.spec, m.facts, m.replace)
