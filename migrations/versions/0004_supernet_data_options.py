"""supernets keep the data options they were registered with (image folder, splits, resolutions)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("supernets") as batch:
        batch.add_column(sa.Column("data_options", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("supernets") as batch:
        batch.drop_column("data_options")
