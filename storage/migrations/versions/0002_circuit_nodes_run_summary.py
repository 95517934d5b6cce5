"""Circuit nodes table and the runs.summary_json column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("summary_json", sa.Text(), server_default="{}", nullable=False)
        )
    op.create_table(
        "circuit_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=True),
        sa.Column("head", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("in_circuit", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_circuit_nodes_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_circuit_nodes")),
    )
    with op.batch_alter_table("circuit_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_circuit_nodes_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("circuit_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_circuit_nodes_run_id"))
    op.drop_table("circuit_nodes")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("summary_json")
