"""distinct-client city requests, worker heartbeats, GPU instance events

Revision ID: 0002_cloudcities
Revises: 0001
Create Date: 2026-11-30 03:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_cloudcities"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "city_request_clients",
        sa.Column("city_id", sa.Integer(), nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["city_id"], ["dim_city.id"], name=op.f("fk_city_request_clients_city_id_dim_city")
        ),
        sa.PrimaryKeyConstraint("city_id", "client_hash", name=op.f("pk_city_request_clients")),
    )
    op.create_index(
        "ix_city_request_clients_client",
        "city_request_clients",
        ["client_hash", "requested_at"],
        unique=False,
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(length=100), nullable=False),
        sa.Column("queue", sa.String(length=20), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_heartbeats")),
    )
    op.create_index(
        op.f("ix_worker_heartbeats_queue"), "worker_heartbeats", ["queue"], unique=False
    )
    op.create_table(
        "gpu_instance_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpu_instance_events")),
    )
    op.create_index(
        op.f("ix_gpu_instance_events_instance_id"),
        "gpu_instance_events",
        ["instance_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gpu_instance_events_instance_id"), table_name="gpu_instance_events")
    op.drop_table("gpu_instance_events")
    op.drop_index(op.f("ix_worker_heartbeats_queue"), table_name="worker_heartbeats")
    op.drop_table("worker_heartbeats")
    op.drop_index("ix_city_request_clients_client", table_name="city_request_clients")
    op.drop_table("city_request_clients")
