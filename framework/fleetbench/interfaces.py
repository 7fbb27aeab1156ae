"""The plugin contracts. Each plugin kind is a small ABC; a plugin class names its options dataclass in `Options`.

The registry validates the configured options against `Options` (a typo fails with the key's name) and constructs the
plugin as `cls(options, **context)`, where the context each kind receives is documented on its ABC.

Every field of an options dataclass is declared with `option(...)`, saying whether it can change a unit's result.
Result-relevant options enter every unit key (changing one re-runs the units it affects); the others (concurrency,
timeouts, paths whose content is digested separately, which cells to run) never do. The registry refuses a plugin
whose options leave a field unclassified, so a new option cannot be forgotten.
"""

from __future__ import annotations

import abc
import dataclasses
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from fleetbench.types import (
    CallRecord,
    Catalog,
    Cell,
    ClaimInfo,
    Completion,
    Episode,
    ErrorClass,
    Lane,
    MetricSpec,
    ModelSpec,
    ReportFilter,
    Request,
    RunRecord,
    Unit,
    UnitResult,
    UnitScope,
)

AFFECTS_RESULT = "fleetbench.affects_result"
"""Field metadata key set by `option()`."""


def option(
    default: Any = dataclasses.MISSING,
    *,
    affects_result: bool,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    help: str = "",
) -> Any:
    """Declare one field of a plugin's options (or params) dataclass.

    `affects_result=True`: the value can change what a unit asks or how it is scored or answered (a scorer, a seed,
    a profile, a generation setting), so it enters every unit key. `False`: it cannot (a deployment's latency,
    concurrency, timeouts, a file path whose content is digested by the suite, which cells to run).
    """
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        metadata={AFFECTS_RESULT: affects_result, "help": help},
    )


def unclassified_fields(options_cls: type[Any]) -> list[str]:
    """Fields of an options dataclass declared without `option(..., affects_result=...)`."""
    return [f.name for f in dataclasses.fields(options_cls) if AFFECTS_RESULT not in f.metadata]


def result_fields(options_cls: type[Any]) -> list[str]:
    """Names of the result-relevant fields of an options dataclass."""
    return [f.name for f in dataclasses.fields(options_cls) if f.metadata.get(AFFECTS_RESULT)]


def result_options(options: Any) -> dict[str, Any]:
    """The result-relevant option values of an options instance, as plain data (what enters unit keys)."""
    if not dataclasses.is_dataclass(options) or isinstance(options, type):
        return {}
    values = dataclasses.asdict(options)
    return {name: values[name] for name in result_fields(type(options))}


@dataclasses.dataclass
class NoOptions:
    """Options dataclass of a plugin that takes none."""


class Plugin(abc.ABC):  # noqa: B024 - a marker base with shared class attributes, no abstract methods
    """Common base: every plugin declares its options dataclass."""

    Options: ClassVar[type[Any]] = NoOptions

    def __init__(self, options: Any) -> None:
        """Keep the validated options; kinds that receive context (naming, storage) extend the signature."""
        self.options = options


class Chat(Protocol):
    """The scheduler's callable bound to one lane: sends one request with retries, timeouts and rate limits, adding the
    model's generation settings.

    It raises `fleetbench.errors.InfraFailure` when the request could not be completed (timeouts, exhausted retries,
    auth); suites let it propagate so the unit is recorded as not done rather than as a model failure.
    """

    async def __call__(self, request: Request) -> Completion: ...


@dataclasses.dataclass(frozen=True)
class EpisodeContext:
    """What a suite may know about where an episode runs (never the credential)."""

    model: ModelSpec
    lane_id: str
    deployment: str
    judge: Chat | None = None
    """A chat bound to the configured judge model's lanes, when the suite asked for one."""


class Provider(Plugin):
    """Talks to one kind of LLM API. Constructed as `cls(options)`.

    The provider only sends and classifies: retries, backoff, timeouts and concurrency live in the scheduler.
    `ModelParams` / `DeploymentParams` validate the free-form `params` blocks of a catalog model and its deployments.
    """

    ModelParams: ClassVar[type[Any]] = NoOptions
    DeploymentParams: ClassVar[type[Any]] = NoOptions

    @abc.abstractmethod
    async def complete(self, lane: Lane, request: Request) -> Completion:
        """Send one request to `lane.deployment` with the lane's credential and return the reply. The request carries
        its messages, tools, tool choice and generation settings, typed."""

    @abc.abstractmethod
    def classify(self, exc: BaseException) -> ErrorClass:
        """Say whether an exception from `complete` is transient, rate limited (with Retry-After), auth or permanent."""

    async def ready(self) -> None:
        """Finish what a first request would otherwise wait for (a slow import, clients). Awaited once before the
        run's first request, so that the wait is never counted in a call's latency. Optional."""

    async def aclose(self) -> None:
        """Release connections. Called once when the run ends."""


class Suite(Plugin):
    """A benchmark: the grid of cells, and how one unit is executed and scored. Constructed as `cls(options)`."""

    name: ClassVar[str]
    version: ClassVar[str]

    @abc.abstractmethod
    def cells(self, base_model: str) -> Iterator[Cell]:
        """The grid points this suite's options define for one base model."""

    def identity(self) -> Mapping[str, Any]:
        """Settings beyond the cell that change results (dataset digest, scorer...). Part of every unit key."""
        return {}

    def instances(self, cell: Cell, requested: int) -> int:
        """How many units `cell` gets when the run asks for `requested` per cell (`run.instances`).

        A suite whose cells hold a limited number of distinct items may answer differently, or raise
        `fleetbench.errors.ConfigError` naming the key when it cannot honour the request; it is asked for every cell
        during validation, before anything runs. The unit at index i must ask the same thing whatever this returns,
        so the count is never part of a unit key.
        """
        return requested

    @abc.abstractmethod
    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        """Execute one unit through `chat` and score it."""

    @abc.abstractmethod
    def metrics(self) -> Sequence[MetricSpec]:
        """Every per-unit metric this suite reports, with how it aggregates."""

    def factor_names(self) -> Sequence[str]:
        """Names of the cell factors, in grid order (report columns)."""
        return ()

    @property
    def needs_judge(self) -> bool:
        """True when episodes need `EpisodeContext.judge` (a chat bound to `run.judge`'s lanes)."""
        return False

    def render_transcript(self, transcript: Mapping[str, Any]) -> str:
        """A stored transcript as readable text (`fleetbench show`); suites override this with their own layout."""
        import json

        return json.dumps(transcript, indent=2, ensure_ascii=False, default=str)

    def transcript_messages(self, transcript: Mapping[str, Any]) -> list[tuple[str, str]]:
        """A stored transcript as a chat, (role, text) pairs with roles system / user / assistant, for exports in
        other tools' formats (`fleetbench export export.format=inspect`).

        The default reads a transcript's `messages` (dicts with role and content) followed by its `answer`, as the
        `jsonl` suite stores them; any other transcript becomes one user message holding `render_transcript`.
        """
        messages = transcript.get("messages")
        if not isinstance(messages, list):
            return [("user", self.render_transcript(transcript))]
        chat = [(str(m.get("role", "user")), str(m.get("content", ""))) for m in messages if isinstance(m, Mapping)]
        if transcript.get("answer") is not None:
            chat.append(("assistant", str(transcript["answer"])))
        return chat


class UnitSource(abc.ABC):
    """One base model's missing units, streamed in plan order (a plan of millions is never held in memory).

    `count` is how many were missing when the run was planned; `stream(start)` yields them from the `start`-th on,
    checking storage lazily, so a unit another process completes in the meantime is skipped.
    """

    @property
    @abc.abstractmethod
    def count(self) -> int:
        """How many units were missing at planning time."""

    @abc.abstractmethod
    def stream(self, start: int = 0) -> Iterator[Unit]:
        """The missing units from the `start`-th (0-based) on, in plan order."""


class Dispatch(abc.ABC):
    """Answers "which unit next?" for the lanes of one base model. Called from one event loop (no locking)."""

    failover: bool = True
    """Whether a unit may run on another lane of its model than the one its share assigned, when that lane is down
    (parked or stopped): an episode in flight restarts elsewhere, and `take_over` hands out the rest of its share.
    False keeps every unit on its own lane (it waits for the lane's probe, or ends as not done if the lane stops)."""

    @abc.abstractmethod
    def next_unit(self, lane_id: str) -> Unit | None:
        """The next unit this lane should run, or None when it has nothing left."""

    @abc.abstractmethod
    def planned(self, lane_id: str) -> int | None:
        """How many units this lane is meant to run: its quota for a static split, None when lanes pull from a
        shared queue. The scheduler starts no more workers on a lane than it has units."""

    def take_over(self, lane_id: str, down_lane_id: str) -> Unit | None:
        """Failover: the next unit of `down_lane_id`'s share for `lane_id` to run because that lane is down, or None
        when that share has nothing left. Only asked when `failover` is true and shares are static; a strategy that
        never binds units to lanes (a shared queue) keeps this default."""
        return None


class ShardingStrategy(Plugin):
    """Spreads one base model's units over its lanes. Constructed as `cls(options)`."""

    @abc.abstractmethod
    def dispatch(self, source: UnitSource, lanes: Sequence[Lane]) -> Dispatch:
        """Build the dispatch for the source's units over these lanes (pull from `source.stream`, never list it)."""


class NamingPolicy(Plugin):
    """Maps any spelling of a model to its canonical base model. Constructed as `cls(options, catalog=Catalog)`.

    Constructing it validates the catalog: a spelling claimed by two base models raises `ConfigError` naming both.
    """

    @abc.abstractmethod
    def base_name(self, spelling: str) -> str:
        """The canonical base model for any spelling; raises `UnknownNameError` (or passes through, per options)."""

    @abc.abstractmethod
    def how(self, spelling: str) -> str | None:
        """How a spelling resolves (e.g. 'alias', 'suffix -2 of base name'), or None when it does not."""

    @abc.abstractmethod
    def resolutions(self) -> Sequence[tuple[str, str, str]]:
        """Every configured spelling as (spelling, canonical base model, how it resolves)."""

    @property
    @abc.abstractmethod
    def catalog(self) -> Catalog:
        """The catalog the policy was built from."""


class Storage(Plugin):
    """Durable results. Constructed as `cls(options, naming=NamingPolicy)`; applies the policy to every model name.

    Writes are idempotent on the unit key and transactional: writing a unit twice never counts it twice.
    """

    def preflight(self) -> None:
        """Check, creating and changing nothing, that `migrate` and writes could work here (the path, the server,
        the driver, the permissions); raise `StorageError` with one line when they could not. `fleetbench run`
        checks every storage of a sweep this way before it migrates any. The default checks nothing."""
        return None

    @abc.abstractmethod
    def migrate(self) -> Sequence[str]:
        """Create or upgrade the schema. Safe to call on every start. Returns notices for the user (one line each)
        about what an upgrade did to existing data, if anything."""

    @abc.abstractmethod
    def stored_among(self, keys: Sequence[str]) -> set[str]:
        """Which of these unit keys are completed (infra errors excluded: those are re-run)."""

    @abc.abstractmethod
    def completed_per_cell(self, scope: UnitScope, seed: int, instances: int) -> Mapping[str, int]:
        """Per cell key: how many completed units of this scope and seed have an instance index below `instances`
        (the planner skips cells with nothing missing without looking at their units)."""

    @abc.abstractmethod
    def completed_per_cell_and_deployment(
        self, scope: UnitScope, seed: int, instances: int
    ) -> Mapping[tuple[str, str], int]:
        """Per (cell key, deployment): completed units of this scope and seed with an instance index below
        `instances` (one pass over the plan's rows: `fleetbench status`)."""

    @abc.abstractmethod
    def begin_run(self, run: RunRecord) -> None:
        """Record a run's start (status `running`, host, pid, first heartbeat) with its redacted configuration and
        the scopes its units carry."""

    @abc.abstractmethod
    def heartbeat(self, run_id: str, at: float) -> None:
        """Record that a running run is alive (a run whose heartbeat stops is shown as dead)."""

    @abc.abstractmethod
    def finish_run(self, run_id: str, status: str, finished_at: float, executed: int) -> None:
        """Record how a run ended; every claim it still holds expires at `finished_at`. The units it claimed and never
        wrote (an interrupted run's next batch) go back to its plan as orphans: a worker of the plan still running
        takes them over at the end of its pass, a rerun claims them."""

    @abc.abstractmethod
    def claim(self, run_id: str, units: Sequence[Unit], now: float, expires_at: float) -> set[str]:
        """Claim for `run_id`, until `expires_at`, those of `units` that are not completed and not held by another
        run's claim that is still live at `now` (an expired claim, or one `run_id` holds, is taken over); return the
        keys claimed. Atomic against any number of concurrent callers in any process: a key is claimed by at most one
        run at a time. Writing a completed result releases the unit's claim, whoever holds it; writing an infra error
        releases only the writing run's own claim (a worker stopped past its lease writes one late, after another run
        took the unit over and may be running it: that run keeps its claim)."""

    @abc.abstractmethod
    def renew_claims(self, run_id: str, expires_at: float) -> int:
        """Set the expiry of every claim `run_id` holds to `expires_at` (a heartbeat pushes it forward; a run found dead
        has it set to now, which makes its claims orphans at once); return how many it holds."""

    @abc.abstractmethod
    def open_claims(self, scope: UnitScope, seed: int) -> list[ClaimInfo]:
        """Every claim, live or expired, on units of this scope and seed (claims are few: units in flight)."""

    @abc.abstractmethod
    def live_runs(self, plan: str, fresh_after: float) -> list[str]:
        """The ids, in sorted order, of the runs of this plan digest that are `running` with a heartbeat at or after
        `fresh_after` and hold at least one claim (a worker waiting for others' units sends no request: it takes no
        share of a lane). Every worker sees the same order, so each can take its own part of a lane's remainder."""

    @abc.abstractmethod
    def recent_calls(self, since: float) -> list[dict[str, Any]]:
        """Every call started at or after `since`: deployment, latency_s, status, http_status (lane health)."""

    @abc.abstractmethod
    def runs(self) -> list[dict[str, Any]]:
        """Every recorded run, newest first: run_id, started_at, finished_at, status, suite, models, host, pid,
        heartbeat_at, planned_units, executed_units, worker, plan, label."""

    @abc.abstractmethod
    def write(self, results: Sequence[UnitResult], calls: Sequence[CallRecord]) -> int:
        """Store results and calls in one transaction; return how many units were newly completed."""

    @abc.abstractmethod
    def aggregate(
        self, group_by: Sequence[str], filter: ReportFilter, metrics: Sequence[MetricSpec] = ()
    ) -> list[dict[str, Any]]:
        """Per group: counts per outcome (`total` excludes infra errors), mean duration and turns, and each metric
        aggregated as its spec says, over completed units. `group_by` holds unit columns
        (`fleetbench.scope_groups.UNIT_COLUMNS`: base_model, deployment, seed, run_id, ...), scope properties
        (`dataset`, `suite_version`, `suite.<option>`) or cell factor names."""

    @abc.abstractmethod
    def deployment_shares(self, filter: ReportFilter) -> list[dict[str, Any]]:
        """Per (base model, deployment): units finished there and calls sent there."""

    def group_calls(self, group_by: Sequence[str], filter: ReportFilter) -> list[dict[str, Any]] | None:
        """Per group of `group_by` (as `aggregate` groups the same units): `calls`, the calls those units sent to
        their own base model's deployments (as `deployment_shares` counts them, so a judge's calls are not counted).
        None when this storage cannot count calls by these groups: the report then leaves the calls of grouped rows
        blank, and every model's calls stay on its deployment lines. The default counts none."""
        return None

    @abc.abstractmethod
    def scope_descriptions(self, digests: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        """What each of these scope digests stands for (as `RunRecord.scopes` recorded it); unknown ones left out."""

    @abc.abstractmethod
    def suites(self) -> Mapping[str, int]:
        """Stored units per suite name (infra errors included): lets a report say a database holds only others."""

    @abc.abstractmethod
    def transcripts(self, key_prefix: str, limit: int = 2) -> list[tuple[str, str, Mapping[str, Any]]]:
        """(unit key, suite name, transcript) for units whose key starts with the prefix."""

    @abc.abstractmethod
    def export_rows(self, filter: ReportFilter) -> Iterable[dict[str, Any]]:
        """Every stored unit as a flat row (identity, outcome, metrics), for CSV/Parquet export."""

    @abc.abstractmethod
    def export_calls(self, filter: ReportFilter) -> Iterable[dict[str, Any]]:
        """Every recorded call of the filtered units (and of the filtered runs, when the filter names runs), streamed
        in the order they were recorded: the `calls` columns (unit_key, run_id, lane_id, deployment, credential_id,
        attempt, started_at, latency_s, status, prompt_tokens, completion_tokens, http_status, error, cost_usd) and
        the unit's `base_model`."""

    @abc.abstractmethod
    def export_transcripts(self, filter: ReportFilter) -> Iterable[tuple[dict[str, Any], Mapping[str, Any]]]:
        """(flat unit row as `export_rows` gives it, transcript) for every filtered unit that has a transcript,
        streamed in `export_rows` order."""

    def close(self) -> None:
        """Release connections."""


class SimulatedPlayer(Plugin):
    """Plays one protocol for the `simulated` provider (entry-point group `fleetbench.simulators`, named after the
    protocol: the suite's name). Constructed as `cls(options)`.

    A suite that wants to be exercised without a real API ships a player next to itself; the simulated provider
    finds it by the request's `protocol`, so the provider never imports a suite and never reads prompt text to learn
    its job. Replies must be deterministic given the request, the profile and `rng`.
    """

    profiles: ClassVar[tuple[str, ...]]
    """The competence profiles this player knows (`models.X.params.profile` of a simulated model)."""

    @abc.abstractmethod
    def respond(self, request: Request, profile: str, params: Mapping[str, Any], rng: random.Random) -> Completion:
        """The simulated model's reply to `request` (answer or judgement, by `request.purpose`). `params` are the
        model's validated params (e.g. `qa_accuracy`)."""
