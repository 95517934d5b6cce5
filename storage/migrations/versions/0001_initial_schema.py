"""Initial schema: models, prompt sets and pairs, runs, per-head results, artifacts, circuit edges.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.String(length=1000), nullable=False),
        sa.Column("facts_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_spec"), ["spec"], unique=False)

    op.create_table(
        "prompt_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("model_spec", sa.String(length=1000), nullable=True),
        sa.Column("n_pairs", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("meta_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_prompt_sets_name")),
    )
    op.create_table(
        "prompt_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_set_id", sa.Integer(), nullable=False),
        sa.Column("pair_index", sa.Integer(), nullable=False),
        sa.Column("clean", sa.Text(), nullable=False),
        sa.Column("corrupted", sa.Text(), nullable=False),
        sa.Column("correct", sa.Text(), nullable=False),
        sa.Column("incorrect", sa.Text(), nullable=False),
        sa.Column("correct_id", sa.Integer(), nullable=True),
        sa.Column("incorrect_id", sa.Integer(), nullable=True),
        sa.Column("meta_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prompt_set_id"],
            ["prompt_sets.id"],
            name=op.f("fk_prompt_pairs_prompt_set_id_prompt_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_pairs")),
        sa.UniqueConstraint(
            "prompt_set_id", "pair_index", name=op.f("uq_prompt_pairs_prompt_set_id_pair_index")
        ),
    )
    with op.batch_alter_table("prompt_pairs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prompt_pairs_prompt_set_id"), ["prompt_set_id"], unique=False
        )

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("model_spec", sa.String(length=1000), nullable=False),
        sa.Column("prompt_set_id", sa.Integer(), nullable=True),
        sa.Column("versions_json", sa.Text(), nullable=False),
        sa.Column("code_version", sa.String(length=200), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('QUEUED', 'RUNNING', 'FINISHED', 'FAILED', 'CANCELLED')",
            name=op.f("ck_runs_status_valid"),
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_runs_progress_range")),
        sa.ForeignKeyConstraint(
            ["prompt_set_id"],
            ["prompt_sets.id"],
            name=op.f("fk_runs_prompt_set_id_prompt_sets"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_prompt_set_id"), ["prompt_set_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_status_id"), ["status", "id"], unique=False)

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=200), nullable=False),
        sa.Column("relpath", sa.String(length=500), nullable=False),
        sa.Column("meta_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_artifacts_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint("run_id", "name", name=op.f("uq_artifacts_run_id_name")),
    )
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_sha256"), ["sha256"], unique=False)

    op.create_table(
        "circuit_edges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("in_circuit", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_circuit_edges_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_circuit_edges")),
    )
    with op.batch_alter_table("circuit_edges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_circuit_edges_run_id"), ["run_id"], unique=False)

    op.create_table(
        "head_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("head", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("prompt", sa.Integer(), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_head_results_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_head_results")),
    )
    with op.batch_alter_table("head_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_head_results_run_id_metric"), ["run_id", "metric"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("head_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_head_results_run_id_metric"))

    op.drop_table("head_results")
    with op.batch_alter_table("circuit_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_circuit_edges_run_id"))

    op.drop_table("circuit_edges")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_sha256"))

    op.drop_table("artifacts")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_status_id"))
        batch_op.drop_index(batch_op.f("ix_runs_prompt_set_id"))
        batch_op.drop_index(batch_op.f("ix_runs_kind"))

    op.drop_table("runs")
    with op.batch_alter_table("prompt_pairs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompt_pairs_prompt_set_id"))

    op.drop_table("prompt_pairs")
    op.drop_table("prompt_sets")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_spec"))

    op.drop_table("models")
