"""Initial schema: runs, units, calls, transcripts.

Revision ID: 0001
Revises:
Create Date: 2025-11-25

Migrations spell their tables out instead of importing `schema.py`: a revision must keep creating what it created
when it was written, whatever the current metadata says.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_CALL_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("suite", sa.String(255), nullable=False),
        sa.Column("models", _JSON, nullable=False),
        sa.Column("config", _JSON, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("planned_units", sa.Integer, nullable=False),
        sa.Column("executed_units", sa.Integer),
    )
    op.create_table(
        "units",
        sa.Column("unit_key", sa.String(64), primary_key=True),
        sa.Column("suite", sa.String(255), nullable=False),
        sa.Column("base_model", sa.String(255), nullable=False),
        sa.Column("factors", _JSON, nullable=False),
        sa.Column("instance_index", sa.Integer, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("task_id", sa.String(255)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("turns", sa.Integer, nullable=False),
        sa.Column("error_category", sa.String(255)),
        sa.Column("infra_status", sa.String(255)),
        sa.Column("deployment", sa.String(255), nullable=False),
        sa.Column("lane_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("duration_s", sa.Double, nullable=False),
    )
    op.create_index("ix_units_suite_base_model", "units", ["suite", "base_model"])
    op.create_index("ix_units_run_id", "units", ["run_id"])
    op.create_table(
        "calls",
        sa.Column("id", _CALL_ID, primary_key=True, autoincrement=True),
        sa.Column("unit_key", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("lane_id", sa.String(255), nullable=False),
        sa.Column("deployment", sa.String(255), nullable=False),
        sa.Column("credential_id", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("latency_s", sa.Double, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_calls_unit_key", "calls", ["unit_key"])
    op.create_index("ix_calls_run_id", "calls", ["run_id"])
    op.create_table(
        "transcripts",
        sa.Column("unit_key", sa.String(64), sa.ForeignKey("units.unit_key", ondelete="CASCADE"), primary_key=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("encoding", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("transcripts")
    op.drop_table("calls")
    op.drop_table("units")
    op.drop_table("runs")
