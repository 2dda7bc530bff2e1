"""the everyday pool: photos of no city, negatives for every city's training

Revision ID: 0004_everyday
Revises: 0003_sightinfo
Create Date: 2026-11-30 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_everyday"
down_revision = "0003_sightinfo"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "everyday_images",
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["dim_image.id"], name=op.f("fk_everyday_images_image_id_dim_image")
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_everyday_images")),
    )


def downgrade() -> None:
    op.drop_table("everyday_images")
