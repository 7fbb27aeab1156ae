"""Scoped, fast reports: the experiment of each run and unit, cells with their factors, and running totals of units.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

`unit_totals` adds up units per (suite, scope, seed, cell, base model, run, deployment); `cells` maps each cell key
to its factors; `metric_slots` says which totals columns hold which metric. Every unit stored before this revision
is added up here once, so the totals equal the units from the start. Units and runs gain a nullable `experiment`
(null for what ran before: the preset was not recorded then).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision: str | None = "0005"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_SLOTS = 64  # schema.METRIC_SLOTS when this revision was written


def upgrade() -> None:
    op.add_column("units", sa.Column("experiment", sa.String(255)))
    op.add_column("runs", sa.Column("experiment", sa.String(255)))
    op.create_table(
        "cells",
        sa.Column("cell_key", sa.String(32), primary_key=True),
        sa.Column("suite", sa.String(255), nullable=False),
        sa.Column("factors", _JSON, nullable=False),
    )
    op.create_table(
        "metric_slots",
        sa.Column("suite", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("slot", sa.Integer, nullable=False),
        sa.UniqueConstraint("suite", "slot", name="uq_metric_slots_suite_slot"),
    )
    op.create_table(
        "unit_totals",
        sa.Column("suite", sa.String(255), primary_key=True),
        sa.Column("suite_scope", sa.String(32), primary_key=True),
        sa.Column("model_scope", sa.String(32), primary_key=True),
        sa.Column("seed", sa.BigInteger, primary_key=True),
        sa.Column("cell_key", sa.String(32), primary_key=True),
        sa.Column("base_model", sa.String(255), primary_key=True),
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("deployment", sa.String(255), primary_key=True),
        sa.Column("max_instance", sa.Integer, nullable=False),
        *(
            sa.Column(name, sa.BigInteger, nullable=False)
            for name in ("n_success", "n_partial", "n_failure", "n_infra_error", "n_timeout")
        ),
        sa.Column("sum_duration_s", sa.Double, nullable=False),
        sa.Column("sum_turns", sa.Double, nullable=False),
        *(sa.Column(f"s{slot}", sa.Double, nullable=False) for slot in range(_SLOTS)),
        *(sa.Column(f"c{slot}", sa.BigInteger, nullable=False) for slot in range(_SLOTS)),
    )
    op.create_table(
        "call_totals",
        sa.Column("suite", sa.String(255), primary_key=True),
        sa.Column("suite_scope", sa.String(32), primary_key=True),
        sa.Column("model_scope", sa.String(32), primary_key=True),
        sa.Column("seed", sa.BigInteger, primary_key=True),
        sa.Column("cell_key", sa.String(32), primary_key=True),
        sa.Column("base_model", sa.String(255), primary_key=True),
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("deployment", sa.String(255), primary_key=True),
        sa.Column("max_instance", sa.Integer, nullable=False),
        sa.Column("n_calls", sa.BigInteger, nullable=False),
    )
    from fleetbench_plugins.storage.sql.totals import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("call_totals")
    op.drop_table("unit_totals")
    op.drop_table("metric_slots")
    op.drop_table("cells")
    op.drop_column("runs", "experiment")
    op.drop_column("units", "experiment")
