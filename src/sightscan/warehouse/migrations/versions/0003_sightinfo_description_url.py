"""what a sight is: a short description and a link per sight, from sight discovery

Revision ID: 0003_sightinfo
Revises: 0002_cloudcities
Create Date: 2026-11-30 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_sightinfo"
down_revision = "0002_cloudcities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dim_sight") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch.add_column(sa.Column("url", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dim_sight") as batch:
        batch.drop_column("url")
        batch.drop_column("description")
