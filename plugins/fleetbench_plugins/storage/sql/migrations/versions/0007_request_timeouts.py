"""A request that timed out counts as a timeout: the running totals are added up again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

Until this revision a unit whose request hung until `scheduler.request_timeout_s` (`infra_status` `request_timeout`)
was an infra error but not a timeout, so `report.exclude_timeouts` and the `timeout` column missed it (the original
counted API timeouts as timeouts). The totals hold that count per group, so they are computed again from the stored
units and calls; the units themselves are unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    from fleetbench_plugins.storage.sql.totals import rebuild

    connection = op.get_bind()
    connection.execute(sa.text("DELETE FROM unit_totals"))
    connection.execute(sa.text("DELETE FROM call_totals"))
    rebuild(connection)


def downgrade() -> None:
    """The totals stay as they are: counting a request timeout as a timeout is only more exact."""
