"""What each call cost: a nullable `calls.cost_usd` (USD; null when the provider knows no price for the model).

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-26

Rows written before this revision keep a null cost: nothing priced them then, and a price looked up now could differ
from the one in force when they ran.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0002"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("cost_usd", sa.Double))


def downgrade() -> None:
    op.drop_column("calls", "cost_usd")
