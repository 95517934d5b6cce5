"""Frozen records exchanged with the store. The store never hands out ORM rows.

``*In`` records are what callers give the store to write; the others are what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    spec: str
    facts: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class PairIn:
    clean: str
    corrupted: str
    correct: str
    incorrect: str
    correct_id: int | None = None
    incorrect_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PairRecord(PairIn):
    index: int = 0


@dataclass(frozen=True)
class PromptSetRecord:
    id: int
    name: str
    source: str
    model_spec: str | None
    n_pairs: int
    content_hash: str
    meta: dict[str, Any]
    created_at: datetime

    @property
    def task(self) -> str | None:
        """The generator task the pairs were made by (None for imported sets)."""
        task = self.meta.get("task")
        return task if isinstance(task, str) else None


@dataclass(frozen=True)
class RunRecord:
    id: int
    kind: str
    status: RunStatus
    config: dict[str, Any]
    model_spec: str
    prompt_set_id: int | None
    versions: dict[str, str]
    code_version: str
    progress: float
    message: str
    error: str | None
    summary: dict[str, Any]
    worker_id: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    sweep_id: int | None = None

    @property
    def elapsed_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return max(0.0, (end - self.started_at).total_seconds())

    def stale_s(self, stale_after_s: float, now: datetime | None = None) -> float | None:
        """Seconds since the last sign of life of a RUNNING run whose worker has been silent
        longer than ``stale_after_s`` (it is probably dead; a worker will fail it); else None."""
        last = self.heartbeat_at or self.started_at
        if self.status is not RunStatus.RUNNING or last is None:
            return None
        age = ((now or datetime.now(last.tzinfo)) - last).total_seconds()
        return age if age > stale_after_s else None

    def status_label(self, stale_after_s: float, now: datetime | None = None) -> str:
        """The status, flagged when the run is stale (``stale_s``)."""
        age = self.stale_s(stale_after_s, now)
        if age is None:
            return self.status.value
        return f"{self.status.value} (stale: no heartbeat for {age:.0f} s)"


@dataclass(frozen=True)
class SweepChild:
    """One run of a sweep, as ``ResultStore.enqueue_sweep`` takes it."""

    config: dict[str, Any]
    model_spec: str
    prompt_set_id: int | None
    versions: dict[str, str]
    code_version: str


@dataclass(frozen=True)
class SweepRecord:
    """A sweep: ``kind`` over the grid in ``spec`` (models, prompt sets, fixed and varied
    options); ``counts`` is how many of its runs are in each status."""

    id: int
    name: str
    kind: str
    spec: dict[str, Any]
    created_at: datetime
    counts: dict[str, int]

    @property
    def n_runs(self) -> int:
        return sum(self.counts.values())

    @property
    def n_ended(self) -> int:
        return sum(n for status, n in self.counts.items() if RunStatus(status).is_terminal)

    @property
    def done(self) -> bool:
        return self.n_ended == self.n_runs


@dataclass(frozen=True)
class HeadResultIn:
    """One number about one head (or one layer component when ``head`` is None).

    ``position`` is set for per-position analyses, ``prompt`` for per-prompt values;
    both None means an aggregate over the prompt set.
    """

    metric: str
    layer: int
    head: int | None
    value: float
    position: int | None = None
    prompt: int | None = None


@dataclass(frozen=True)
class ArtifactIn:
    """A file produced by a run. ``path`` is a finished file on disk that the store copies
    into its content-addressed artifact directory."""

    name: str
    kind: str
    path: str
    media_type: str = "application/octet-stream"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactRecord:
    id: int
    run_id: int
    name: str
    kind: str
    sha256: str
    size: int
    media_type: str
    path: str  # absolute path of the stored file
    meta: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class EdgeIn:
    source: str
    target: str
    score: float
    in_circuit: bool


@dataclass(frozen=True)
class NodeIn:
    name: str
    layer: int | None
    head: int | None
    score: float
    in_circuit: bool


@dataclass(frozen=True)
class PromptSetIn:
    """A prompt set that a run creates (e.g. an import or a generator run)."""

    name: str
    pairs: list[PairIn]
    source: str
    model_spec: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelIn:
    """A model that a run registers, with the architecture facts it measured."""

    name: str
    spec: str
    facts: dict[str, Any] = field(default_factory=dict)
    replace: bool = False


@dataclass(frozen=True)
class RunOutput:
    """Everything a finished run writes, committed with status FINISHED in one transaction.

    ``prompt_set`` / ``model`` are catalog entries a run creates; a name that is taken fails the
    whole commit (``Conflict``) and nothing is written."""

    head_results: list[HeadResultIn] = field(default_factory=list)
    artifacts: list[ArtifactIn] = field(default_factory=list)
    edges: list[EdgeIn] = field(default_factory=list)
    nodes: list[NodeIn] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    prompt_set: PromptSetIn | None = None
    model: ModelIn | None = None
