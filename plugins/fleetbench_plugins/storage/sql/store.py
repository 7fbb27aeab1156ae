"""The `sql` storage plugin: SQLite by default, PostgreSQL through psycopg 3.

The class is thin on purpose: constructing it touches neither disk nor network and imports no SQLAlchemy, so listing
plugins stays instant. The engine (in `database.py`) is built on first use, once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fleetbench.errors import UnknownNameError
from fleetbench.interfaces import NamingPolicy, Storage
from fleetbench.types import CallRecord, ClaimInfo, MetricSpec, ReportFilter, RunRecord, Unit, UnitResult, UnitScope

from .options import SqlOptions

if TYPE_CHECKING:
    from .database import SqlDatabase


class SqlStorage(Storage):
    """Results in SQL: one row per unit key (written exactly once), one per LLM call, per-unit transcripts.

    Every model name written or looked up goes through the naming policy first, so `DeepSeek-V3-0324-2` and
    `deepseek-v3-0324` are stored and counted as `DeepSeek-V3-0324`. Reports read running totals that the
    transaction writing the units updates (see `totals`), never counts kept outside the database.
    """

    Options = SqlOptions
    options: SqlOptions

    def __init__(self, options: SqlOptions, *, naming: NamingPolicy) -> None:
        super().__init__(options)
        self._naming = naming
        self._database: SqlDatabase | None = None
        # The runner writes from a dedicated thread while its main thread may read: build the engine only once.
        self._lock = threading.Lock()

    def _db(self) -> SqlDatabase:
        with self._lock:
            if self._database is None:
                from .database import SqlDatabase

                self._database = SqlDatabase(self.options, self._naming)
            return self._database

    def preflight(self) -> None:
        """SQLite: the path is usable and, when the file exists, it is a SQLite database; PostgreSQL: the server
        answers and the database exists. Creates nothing."""
        self._db().preflight()

    def migrate(self) -> list[str]:
        """Create the schema or upgrade it to this version's head; concurrent callers wait for each other. Returns
        a notice when an upgrade moved old units aside (see migration 0002)."""
        return self._db().migrate()

    def stored_among(self, keys: Sequence[str]) -> set[str]:
        """Which of these keys are completed units (infra errors excluded)."""
        return self._db().stored_among(keys)

    def completed_per_cell(self, scope: UnitScope, seed: int, instances: int) -> Mapping[str, int]:
        """Per cell key: completed units of the scope and seed with an instance index below `instances`."""
        return self._db().completed_per_cell(scope, seed, instances)

    def completed_per_cell_and_deployment(
        self, scope: UnitScope, seed: int, instances: int
    ) -> Mapping[tuple[str, str], int]:
        """Per (cell key, deployment): completed units of the scope and seed with an index below `instances`."""
        return self._db().completed_per_cell_and_deployment(scope, seed, instances)

    def begin_run(self, run: RunRecord) -> None:
        """Insert the run's row (status `running`, host, pid, first heartbeat) and its scopes; a run id already
        recorded is a `StorageError`."""
        self._db().begin_run(run)

    def heartbeat(self, run_id: str, at: float) -> None:
        """Record that the run is alive."""
        self._db().heartbeat(run_id, at)

    def finish_run(self, run_id: str, status: str, finished_at: float, executed: int) -> None:
        """Record the end of a begun run."""
        self._db().finish_run(run_id, status, finished_at, executed)

    def claim(self, run_id: str, units: Sequence[Unit], now: float, expires_at: float) -> set[str]:
        """Claim the units nobody else holds live and nobody completed (see `Storage.claim`): one transaction."""
        return self._db().claim(run_id, units, now, expires_at)

    def renew_claims(self, run_id: str, expires_at: float) -> int:
        """Extend the run's claims (its heartbeat)."""
        return self._db().renew_claims(run_id, expires_at)

    def open_claims(self, scope: UnitScope, seed: int) -> list[ClaimInfo]:
        """Claims on units of this scope and seed."""
        return self._db().open_claims(scope, seed)

    def live_runs(self, plan: str, fresh_after: float) -> list[str]:
        """Ids of the running runs of this plan digest with a fresh heartbeat that hold claims, sorted."""
        return self._db().live_runs(plan, fresh_after)

    def recent_calls(self, since: float) -> list[dict[str, Any]]:
        """Calls started since `since` (deployment, latency_s, status, http_status)."""
        return self._db().recent_calls(since)

    def runs(self) -> list[dict[str, Any]]:
        """Every recorded run, newest first (see `Storage.runs`)."""
        return self._db().runs()

    def write(self, results: Sequence[UnitResult], calls: Sequence[CallRecord]) -> int:
        """Store results, their transcripts and the calls in one transaction; return the units newly completed.

        A completed unit is never replaced and never counted twice; a stored infra error is replaced by a later
        result for its key. Calls are always appended. Runs named by results or calls must have been begun.
        """
        return self._db().write(results, calls)

    def aggregate(
        self, group_by: Sequence[str], filter: ReportFilter, metrics: Sequence[MetricSpec] = ()
    ) -> list[dict[str, Any]]:
        """Per group (sorted by group values): the group keys, `total` (completed units), `success`, `partial`,
        `failure`, `infra_error`, `mean_duration_s`, `mean_turns` and each metric by name (mean or sum, over
        completed units; None where a group has none). Factor values keep their JSON type (0.8 stays a float).
        Read from the running totals (`unit_totals`) wherever they answer exactly (see `summaries`)."""
        return self._db().aggregate(group_by, filter, metrics)

    def deployment_shares(self, filter: ReportFilter) -> list[dict[str, Any]]:
        """Per (base model, deployment), sorted: `units` completed there and `calls` sent there for that model.

        Calls a unit sent to another model's deployment (a judge) stay in `calls` for cost accounting but are not
        a share of the judged model: a deployment is only ever listed under its own base model.
        """
        return [share for share in self._db().deployment_shares(filter) if self._belongs(share)]

    def group_calls(self, group_by: Sequence[str], filter: ReportFilter) -> list[dict[str, Any]] | None:
        """Per group of `group_by`: `calls` its units sent to their own base model's deployments, from the running
        totals of calls; None when a group is a scope property or a unit column those totals do not keep."""
        names = list(group_by)
        by = names if "base_model" in names else ["base_model", *names]  # whose deployments a call counts for
        found = self._db().group_calls(by, filter)
        if found is None:
            return None
        counts: dict[tuple[Any, ...], int] = {}
        for (key, deployment), calls in found.items():
            if self._belongs({"base_model": key[by.index("base_model")], "deployment": deployment}):
                group = tuple(key[by.index(name)] for name in names)
                counts[group] = counts.get(group, 0) + calls
        return [{**dict(zip(names, key, strict=True)), "calls": calls} for key, calls in counts.items()]

    def _belongs(self, share: Mapping[str, Any]) -> bool:
        try:
            return bool(self._naming.base_name(str(share["deployment"])) == share["base_model"])
        except UnknownNameError:  # a deployment no longer in the catalog: keep what the data says
            return True

    def scope_descriptions(self, digests: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        """What each of these scope digests stands for; unknown ones are left out."""
        return self._db().scope_descriptions(digests)

    def suites(self) -> Mapping[str, int]:
        """Stored units per suite name (infra errors included), from the running totals."""
        return self._db().suites()

    def transcripts(self, key_prefix: str, limit: int = 2) -> list[tuple[str, str, Mapping[str, Any]]]:
        """Up to `limit` (unit key, suite, transcript) triples whose key starts with `key_prefix`, by key."""
        return self._db().transcripts(key_prefix, limit)

    def export_rows(self, filter: ReportFilter) -> Iterable[dict[str, Any]]:
        """Every stored unit (infra errors included, see `outcome`) as a flat dict, streamed: columns, factors,
        metrics; a factor or metric named like a column is prefixed `factor.` / `metric.`."""
        return self._db().export_rows(filter)

    def export_calls(self, filter: ReportFilter) -> Iterable[dict[str, Any]]:
        """Every call of the filtered units (and runs), streamed by id, with the unit's base model."""
        return self._db().export_calls(filter)

    def export_transcripts(self, filter: ReportFilter) -> Iterable[tuple[dict[str, Any], Mapping[str, Any]]]:
        """(flat unit row, transcript) for every filtered unit with a transcript, streamed in export order."""
        return self._db().export_transcripts(filter)

    def close(self) -> None:
        """Dispose of the engine's connections; the storage reconnects if used again."""
        with self._lock:
            if self._database is not None:
                self._database.close()
                self._database = None
