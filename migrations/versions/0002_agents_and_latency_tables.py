"""agents and latency tables: uploaded LUTs per device, the agents' measurement queue keyed by
what is measured (device, supernet, config, batch size) with the result on the row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 21:03:10.819182
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "latency_tables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("source_name", sa.String(length=300), nullable=True),
        sa.Column("descriptor", sa.JSON(), nullable=False),
        sa.Column("measurement", sa.JSON(), nullable=False),
        sa.Column("unmapped_keys", sa.JSON(), nullable=False),
        sa.Column("renamed_keys", sa.JSON(), nullable=False),
        sa.Column("entries_count", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_latency_tables_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_latency_tables")),
    )
    with op.batch_alter_table("latency_tables", schema=None) as batch_op:
        batch_op.create_index(
            "ix_latency_tables_device_family", ["device_id", "family"], unique=False
        )
    op.create_table(
        "latency_table_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("table_id", sa.Integer(), nullable=False),
        sa.Column("op_key", sa.String(length=500), nullable=False),
        sa.Column("mean_ms", sa.Float(), nullable=False),
        sa.Column("std_ms", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("median_ms", sa.Float(), nullable=True),
        sa.Column("p90_ms", sa.Float(), nullable=True),
        sa.Column("cv", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["table_id"],
            ["latency_tables.id"],
            name=op.f("fk_latency_table_entries_table_id_latency_tables"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_latency_table_entries")),
        sa.UniqueConstraint(
            "table_id", "op_key", name=op.f("uq_latency_table_entries_table_id_op_key")
        ),
    )
    # The 0001 queue (one row per candidate) was never written to; replace it outright.
    _drop_measurement_tasks()
    op.create_table(
        "measurement_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("supernet_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("input_shape", sa.JSON(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=200), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("runtime", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _created_at(),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_measurement_tasks_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supernet_id"],
            ["supernets.id"],
            name=op.f("fk_measurement_tasks_supernet_id_supernets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_measurement_tasks_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurement_tasks")),
        sa.UniqueConstraint(
            "device_id",
            "supernet_id",
            "config_hash",
            "batch_size",
            name=op.f("uq_measurement_tasks_device_id_supernet_id_config_hash_batch_size"),
        ),
    )
    _create_status_index()


def _drop_measurement_tasks() -> None:
    with op.batch_alter_table("measurement_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_measurement_tasks_device_status")
    op.drop_table("measurement_tasks")


def _create_status_index() -> None:
    with op.batch_alter_table("measurement_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_measurement_tasks_device_status", ["device_id", "status"], unique=False
        )


def downgrade() -> None:
    _drop_measurement_tasks()
    op.create_table(
        "measurement_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=200), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_measurement_tasks_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_measurement_tasks_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurement_tasks")),
    )
    _create_status_index()
    op.drop_table("latency_table_entries")
    with op.batch_alter_table("latency_tables", schema=None) as batch_op:
        batch_op.drop_index("ix_latency_tables_device_family")
    op.drop_table("latency_tables")
