"""The database schema as SQLAlchemy 2 declarative models.

Conventions: tables are plural snake_case; ``*_at`` columns are UTC timestamps (``UTCDateTime``);
``*_json`` columns are JSON text (``JSONText``); every constraint and index is named through the
MetaData naming convention (so migrations can refer to them on SQLite and PostgreSQL alike); the
run status is checked by the database. Per-head results are rows
``(run_id, metric, layer, head, position, prompt, value)`` indexed on ``(run_id, metric)``.

This module is the target of the Alembic migrations in ``storage/migrations``: a test asserts that
the migrated schema equals this metadata. Change both together (a new revision per change).
The store reads and writes through the Core tables (``Model.__table__``) and hands out frozen
records, never these ORM objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.columns import JSONText, UTCDateTime, utc_now

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
RUN_STATUSES = ("QUEUED", "RUNNING", "FINISHED", "FAILED", "CANCELLED")
STATUS_CHECK = "status IN (" + ", ".join(f"'{s}'" for s in RUN_STATUSES) + ")"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[str] = mapped_column(String(1000), index=True)
    facts_json: Mapped[Any] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class PromptSet(Base):
    __tablename__ = "prompt_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(Text)
    model_spec: Mapped[str | None] = mapped_column(String(1000))
    n_pairs: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    meta_json: Mapped[Any] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class PromptPair(Base):
    __tablename__ = "prompt_pairs"
    __table_args__ = (UniqueConstraint("prompt_set_id", "pair_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt_set_id: Mapped[int] = mapped_column(
        ForeignKey("prompt_sets.id", ondelete="CASCADE"), index=True
    )
    pair_index: Mapped[int] = mapped_column(Integer)
    clean: Mapped[str] = mapped_column(Text)
    corrupted: Mapped[str] = mapped_column(Text)
    correct: Mapped[str] = mapped_column(Text)
    incorrect: Mapped[str] = mapped_column(Text)
    correct_id: Mapped[int | None] = mapped_column(Integer)
    incorrect_id: Mapped[int | None] = mapped_column(Integer)
    meta_json: Mapped[Any] = mapped_column(JSONText)


class Sweep(Base):
    """One analysis fanned out over models × prompt sets × configs; its runs point to it."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    spec_json: Mapped[Any] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(STATUS_CHECK, name="status_valid"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
        Index(None, "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    config_json: Mapped[Any] = mapped_column(JSONText)
    model_spec: Mapped[str] = mapped_column(String(1000))
    # RESTRICT: a prompt set used by runs cannot be deleted (the store says so first, clearly).
    prompt_set_id: Mapped[int | None] = mapped_column(
        ForeignKey("prompt_sets.id", ondelete="RESTRICT"), index=True
    )
    versions_json: Mapped[Any] = mapped_column(JSONText)
    code_version: Mapped[str] = mapped_column(String(200))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    summary_json: Mapped[Any] = mapped_column(JSONText, server_default="{}")
    worker_id: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), index=True
    )


class HeadResult(Base):
    __tablename__ = "head_results"
    __table_args__ = (Index(None, "run_id", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(100))
    layer: Mapped[int] = mapped_column(Integer)
    head: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int | None] = mapped_column(Integer)
    prompt: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name"), Index(None, "sha256"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(200))
    relpath: Mapped[str] = mapped_column(String(500))
    meta_json: Mapped[Any] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class CircuitEdge(Base):
    __tablename__ = "circuit_edges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    in_circuit: Mapped[bool] = mapped_column(Boolean)


class CircuitNode(Base):
    __tablename__ = "circuit_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    layer: Mapped[int | None] = mapped_column(Integer)
    head: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    in_circuit: Mapped[bool] = mapped_column(Boolean)


models = cast(Table, Model.__table__)
prompt_sets = cast(Table, PromptSet.__table__)
prompt_pairs = cast(Table, PromptPair.__table__)
sweeps = cast(Table, Sweep.__table__)
runs = cast(Table, Run.__table__)
head_results = cast(Table, HeadResult.__table__)
artifacts = cast(Table, Artifact.__table__)
circuit_edges = cast(Table, CircuitEdge.__table__)
circuit_nodes = cast(Table, CircuitNode.__table__)
