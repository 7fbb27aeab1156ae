"""Claims with leases, so many workers share one plan; who each run is (`runs.worker`, `runs.plan`); calls by time;
a covering index for counting a plan's units per cell and per deployment (`fleetbench status`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

`claims` holds one row per unit a live worker has taken and not yet written: the run that holds it and when its lease
expires. Nothing existing changes: earlier runs simply held no claims.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("unit_key", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("base_model", sa.String(255), nullable=False),
        sa.Column("suite_scope", sa.String(32), nullable=False),
        sa.Column("model_scope", sa.String(32), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("cell_key", sa.String(32), nullable=False),
        sa.Column("instance_index", sa.Integer, nullable=False),
    )
    op.create_index("ix_claims_run_id", "claims", ["run_id"])
    op.create_index("ix_claims_plan", "claims", ["suite_scope", "model_scope", "seed"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("worker", sa.Integer))
        batch.add_column(sa.Column("plan", sa.String(32)))
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index(
        "ix_units_plan_counts",
        "units",
        ["suite_scope", "model_scope", "seed", "cell_key", "instance_index", "outcome", "deployment"],
    )


def downgrade() -> None:
    op.drop_index("ix_units_plan_counts", "units")
    op.drop_index("ix_calls_started_at", "calls")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("plan")
        batch.drop_column("worker")
    op.drop_index("ix_claims_plan", "claims")
    op.drop_index("ix_claims_run_id", "claims")
    op.drop_table("claims")
