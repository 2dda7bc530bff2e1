"""workers: heartbeats of running queue workers

Revision ID: 0002_cli
Revises: 0001
Create Date: 2026-11-30 03:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_cli"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("queue", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_queue"), "workers", ["queue"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_workers_queue"), table_name="workers")
    op.drop_table("workers")
