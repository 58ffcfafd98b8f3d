"""latency measurements keep the device's LUT estimate beside the measured value

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("latency_measurements") as batch:
        batch.add_column(sa.Column("predicted_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("predicted_by", sa.String(length=60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("latency_measurements") as batch:
        batch.drop_column("predicted_by")
        batch.drop_column("predicted_ms")
