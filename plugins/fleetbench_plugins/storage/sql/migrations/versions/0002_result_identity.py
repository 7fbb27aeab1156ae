"""Result identity: scope columns on units, a scopes table, run liveness; scheme-1 units moved aside.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Unit keys of fleetbench 0.1 (key scheme 1) left out options that change results (a scorer, a provider's seed, a
model's profile), so a stored result could answer a different question than the one a plan asks. Their keys cannot
be recomputed (what they left out was never recorded), so this revision moves those units and their transcripts,
untouched, into `legacy_units_v1` / `legacy_transcripts_v1`: nothing is deleted, nothing old is ever counted with a
current plan's units, and they run again under scheme-2 keys. Calls stay in `calls` (for cost accounting).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision: str | None = "0001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_UNIT_COLUMNS = (
    "unit_key, suite, base_model, factors, instance_index, seed, task_id, outcome, metrics, turns, error_category, "
    "infra_status, deployment, lane_id, run_id, started_at, duration_s"
)


def upgrade() -> None:
    _move_scheme_1_units()
    op.add_column("units", sa.Column("suite_scope", sa.String(32)))
    op.add_column("units", sa.Column("model_scope", sa.String(32)))
    op.add_column("units", sa.Column("cell_key", sa.String(32)))
    op.create_index("ix_units_plan", "units", ["suite_scope", "model_scope", "seed", "cell_key"])
    op.add_column("runs", sa.Column("pid", sa.Integer))
    op.add_column("runs", sa.Column("heartbeat_at", sa.Double))
    op.create_table(
        "scopes",
        sa.Column("scope", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", _JSON, nullable=False),
    )


def _move_scheme_1_units() -> None:
    op.create_table(
        "legacy_units_v1",
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
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("duration_s", sa.Double, nullable=False),
    )
    op.create_table(
        "legacy_transcripts_v1",
        sa.Column("unit_key", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("encoding", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.execute(f"INSERT INTO legacy_units_v1 ({_UNIT_COLUMNS}) SELECT {_UNIT_COLUMNS} FROM units")
    op.execute(
        "INSERT INTO legacy_transcripts_v1 (unit_key, run_id, encoding, data) "
        "SELECT unit_key, run_id, encoding, data FROM transcripts"
    )
    op.execute("DELETE FROM transcripts")
    op.execute("DELETE FROM units")


def downgrade() -> None:
    op.drop_table("scopes")
    op.drop_index("ix_units_plan", "units")
    with op.batch_alter_table("runs") as runs:  # batch: SQLite rebuilds the table to drop columns
        runs.drop_column("heartbeat_at")
        runs.drop_column("pid")
    with op.batch_alter_table("units") as units:
        units.drop_column("cell_key")
        units.drop_column("model_scope")
        units.drop_column("suite_scope")
    op.drop_table("legacy_transcripts_v1")
    op.drop_table("legacy_units_v1")
