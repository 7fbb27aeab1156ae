"""The tables, as SQLAlchemy Core metadata. The migrations in `migrations/versions` create exactly this.

A test compares this metadata with the migrated database, so the two cannot drift apart silently.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA_REVISION = "0007"
"""The alembic head revision this code reads and writes. `migrate()` upgrades a database to it."""

VERSION_TABLE = "fleetbench_alembic_version"
"""Alembic's bookkeeping table, named so it cannot collide with another application's `alembic_version`."""

UNIT_KEY_LENGTH = 64
DIGEST_LENGTH = 32
INFRA_ERROR = "infra_error"

# JSONB on PostgreSQL: unlike `json` it has equality, so reports can GROUP BY a factor and keep its JSON type.
Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an `INTEGER PRIMARY KEY`; PostgreSQL gets a 64-bit identity for the ever-growing calls.
CallId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("started_at", Double, nullable=False),
    Column("finished_at", Double),
    Column("status", String(32), nullable=False),
    Column("suite", String(255), nullable=False),
    Column("models", Json, nullable=False),
    Column("config", Json, nullable=False),
    Column("version", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("planned_units", Integer, nullable=False),
    Column("executed_units", Integer),
    Column("pid", Integer),
    Column("heartbeat_at", Double),
    Column("worker", Integer),
    Column("plan", String(DIGEST_LENGTH)),
    Column("experiment", String(255)),
)

# What a scope digest (units.suite_scope / units.model_scope) stands for: the settings that make units comparable.
scopes = Table(
    "scopes",
    metadata,
    Column("scope", String(DIGEST_LENGTH), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("description", Json, nullable=False),
)

units = Table(
    "units",
    metadata,
    Column("unit_key", String(UNIT_KEY_LENGTH), primary_key=True),
    Column("suite", String(255), nullable=False),
    Column("base_model", String(255), nullable=False),
    Column("factors", Json, nullable=False),
    Column("instance_index", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("task_id", String(255)),
    Column("outcome", String(16), nullable=False),
    Column("metrics", Json, nullable=False),
    Column("turns", Integer, nullable=False),
    Column("error_category", String(255)),
    Column("infra_status", String(255)),
    Column("deployment", String(255), nullable=False),
    Column("lane_id", String(255), nullable=False),
    Column("run_id", String(128), ForeignKey("runs.run_id"), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("duration_s", Double, nullable=False),
    # Nullable only because SQLite adds columns to existing tables that way; every row written since 0002 has them.
    Column("suite_scope", String(DIGEST_LENGTH)),
    Column("model_scope", String(DIGEST_LENGTH)),
    Column("cell_key", String(DIGEST_LENGTH)),
    # The experiment preset of the run that executed the unit (informative: units are shared between experiments
    # whose plans contain them, so reports scope by plan, never by this column).
    Column("experiment", String(255)),
    Index("ix_units_suite_base_model", "suite", "base_model"),
    Index("ix_units_run_id", "run_id"),
    Index("ix_units_plan", "suite_scope", "model_scope", "seed", "cell_key"),
    # Covers what `fleetbench status` and the resume diff count per cell and per deployment, so a plan of a
    # million units is counted from the index alone (no table rows are read).
    Index(
        "ix_units_plan_counts",
        "suite_scope",
        "model_scope",
        "seed",
        "cell_key",
        "instance_index",
        "outcome",
        "deployment",
    ),
)

# Each cell key with its factors: reports group the small `unit_totals` by factor through this table.
cells = Table(
    "cells",
    metadata,
    Column("cell_key", String(DIGEST_LENGTH), primary_key=True),
    Column("suite", String(255), nullable=False),
    Column("factors", Json, nullable=False),
)

# Which `unit_totals` column pair (`s<slot>` sum, `c<slot>` count) holds each metric of a suite.
metric_slots = Table(
    "metric_slots",
    metadata,
    Column("suite", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("slot", Integer, nullable=False),
    UniqueConstraint("suite", "slot", name="uq_metric_slots_suite_slot"),
)

TOTALS_KEY = ("suite", "suite_scope", "model_scope", "seed", "cell_key", "base_model", "run_id", "deployment")
"""What one `unit_totals` row adds up: the units of one scope, seed and cell run by one run on one deployment."""
METRIC_SLOTS = 64
"""Metrics per suite kept in `unit_totals`; a report asking for a metric beyond them aggregates `units` instead."""
OUTCOME_COUNTS = ("n_success", "n_partial", "n_failure", "n_infra_error", "n_timeout")
"""Units per outcome, and `n_timeout`: the infra errors among them that were timeouts (`TIMEOUT_STATUSES`)."""


# Running totals of `units`, updated in the transaction that writes the units, so a report over a million units
# reads a few thousand rows. Means are sums over counts; `max_instance` tells whether every unit of the row lies
# below a plan's instance count (else the report reads those cells from `units`).
unit_totals = Table(
    "unit_totals",
    metadata,
    Column("suite", String(255), primary_key=True),
    Column("suite_scope", String(DIGEST_LENGTH), primary_key=True),
    Column("model_scope", String(DIGEST_LENGTH), primary_key=True),
    Column("seed", BigInteger, primary_key=True),
    Column("cell_key", String(DIGEST_LENGTH), primary_key=True),
    Column("base_model", String(255), primary_key=True),
    Column("run_id", String(128), primary_key=True),
    Column("deployment", String(255), primary_key=True),
    Column("max_instance", Integer, nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in OUTCOME_COUNTS),
    Column("sum_duration_s", Double, nullable=False),
    Column("sum_turns", Double, nullable=False),
    *(Column(f"s{slot}", Double, nullable=False) for slot in range(METRIC_SLOTS)),
    *(Column(f"c{slot}", BigInteger, nullable=False) for slot in range(METRIC_SLOTS)),
)

# Calls per totals key (the unit's scope, seed, cell and base model; the call's run and deployment): the deployment
# shares of a report count calls here, kept in step by the write path like `unit_totals`.
call_totals = Table(
    "call_totals",
    metadata,
    *(Column(c.name, c.type, primary_key=True) for c in unit_totals.columns if c.name in TOTALS_KEY),
    Column("max_instance", Integer, nullable=False),
    Column("n_calls", BigInteger, nullable=False),
)

calls = Table(
    "calls",
    metadata,
    Column("id", CallId, primary_key=True, autoincrement=True),
    Column("unit_key", String(UNIT_KEY_LENGTH), nullable=False),
    Column("run_id", String(128), ForeignKey("runs.run_id"), nullable=False),
    Column("lane_id", String(255), nullable=False),
    Column("deployment", String(255), nullable=False),
    Column("credential_id", String(255), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("latency_s", Double, nullable=False),
    Column("status", String(32), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("http_status", Integer),
    Column("error", Text),
    Column("cost_usd", Double),
    Index("ix_calls_unit_key", "unit_key"),
    Index("ix_calls_run_id", "run_id"),
    Index("ix_calls_started_at", "started_at"),
)

# One row per unit a worker has taken and not yet written (see `Storage.claim`). A claim whose lease expired (its
# worker died) may be taken by any run; writing a unit's result deletes its claim, finishing a run deletes the rest.
claims = Table(
    "claims",
    metadata,
    Column("unit_key", String(UNIT_KEY_LENGTH), primary_key=True),
    Column("run_id", String(128), ForeignKey("runs.run_id"), nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("base_model", String(255), nullable=False),
    Column("suite_scope", String(DIGEST_LENGTH), nullable=False),
    Column("model_scope", String(DIGEST_LENGTH), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("cell_key", String(DIGEST_LENGTH), nullable=False),
    Column("instance_index", Integer, nullable=False),
    Index("ix_claims_run_id", "run_id"),
    Index("ix_claims_plan", "suite_scope", "model_scope", "seed"),
)

transcripts = Table(
    "transcripts",
    metadata,
    Column(
        "unit_key",
        String(UNIT_KEY_LENGTH),
        ForeignKey("units.unit_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("run_id", String(128), ForeignKey("runs.run_id"), nullable=False),
    Column("encoding", String(32), nullable=False),
    Column("data", LargeBinary, nullable=False),
)


# Units (and their transcripts) keyed by scheme 1 (fleetbench 0.1), whose keys left out result-relevant options.
# Migration 0002 moves them here, untouched, so they can never be mistaken for results of a current plan.
legacy_units_v1 = Table(
    "legacy_units_v1",
    metadata,
    Column("unit_key", String(UNIT_KEY_LENGTH), primary_key=True),
    Column("suite", String(255), nullable=False),
    Column("base_model", String(255), nullable=False),
    Column("factors", Json, nullable=False),
    Column("instance_index", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("task_id", String(255)),
    Column("outcome", String(16), nullable=False),
    Column("metrics", Json, nullable=False),
    Column("turns", Integer, nullable=False),
    Column("error_category", String(255)),
    Column("infra_status", String(255)),
    Column("deployment", String(255), nullable=False),
    Column("lane_id", String(255), nullable=False),
    Column("run_id", String(128), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("duration_s", Double, nullable=False),
)

legacy_transcripts_v1 = Table(
    "legacy_transcripts_v1",
    metadata,
    Column("unit_key", String(UNIT_KEY_LENGTH), primary_key=True),
    Column("run_id", String(128), nullable=False),
    Column("encoding", String(32), nullable=False),
    Column("data", LargeBinary, nullable=False),
)
