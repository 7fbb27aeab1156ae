"""What the user sees about lanes at the end of a run: one line per deployment that had problems.

Each line says what went wrong (cause and count), what the scheduler did about it (parked, stopped, concurrency
lowered, episodes moved) and what to check: the environment variable and catalog key of a refused API key, the
catalog key of a deployment name that was not found, the endpoint of a deployment that could not be reached. It
names variables and keys, never their values (an endpoint is shown with any secret in it redacted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fleetbench.lanes import LaneState, Mode
from fleetbench.secrets import HIDDEN_PREFIX, redact_text
from fleetbench.types import CallStatus, Lane

CAUSES: dict[CallStatus, str] = {
    CallStatus.AUTH: "API key refused",
    CallStatus.NOT_FOUND: "deployment not found",
    CallStatus.UNREACHABLE: "connection refused or endpoint unreachable",
    CallStatus.TRANSIENT: "transient failures",
    CallStatus.TIMEOUT: "request timeouts",
    CallStatus.RATE_LIMITED: "rate limited",
    CallStatus.EMPTY: "empty replies",
    CallStatus.PERMANENT: "requests rejected",
    CallStatus.CONTEXT_LENGTH: "context too long",
}
"""Every failed call status, in the order lines list them."""


@dataclass(frozen=True)
class LaneReport:
    """How one lane fared over the run."""

    lane: Lane
    mode: Mode
    stop_cause: CallStatus | None
    statuses: Mapping[CallStatus, int]
    http_statuses: Mapping[CallStatus, Mapping[int | None, int]]
    parks: int
    probes_failed: int
    max_concurrency: int
    lowest_concurrency: int
    concurrency: int
    episodes_lost: int
    episodes_given_up: int
    units_taken_over: int
    units_not_run: int

    @classmethod
    def of(cls, state: LaneState) -> LaneReport:
        breaker, slots = state.breaker, state.slots
        return cls(
            lane=state.lane,
            mode=breaker.mode,
            stop_cause=breaker.stop_cause,
            statuses=dict(state.statuses),
            http_statuses={status: dict(codes) for status, codes in state.http_statuses.items()},
            parks=breaker.parks,
            probes_failed=breaker.probes_failed,
            max_concurrency=slots.ceiling,
            lowest_concurrency=slots.lowest,
            concurrency=slots.limit,
            episodes_lost=state.episodes_lost,
            episodes_given_up=state.episodes_given_up,
            units_taken_over=state.units_taken_over,
            units_not_run=state.units_not_run,
        )

    @property
    def failed_calls(self) -> int:
        return sum(count for status, count in self.statuses.items() if status is not CallStatus.OK)

    @property
    def had_problems(self) -> bool:
        return bool(self.failed_calls or self.parks or self.mode is Mode.STOPPED or self.units_not_run)


def problem_lines(reports: Iterable[LaneReport]) -> list[str]:
    """One line per deployment whose lanes had problems, in the order the lanes were declared."""
    by_deployment: dict[str, list[LaneReport]] = {}
    for report in reports:
        if report.had_problems:
            by_deployment.setdefault(report.lane.deployment, []).append(report)
    return [_line(lanes) for lanes in by_deployment.values()]


def _line(lanes: Sequence[LaneReport]) -> str:
    lane = lanes[0].lane
    parts = [_causes(lanes), *_actions(lanes)]
    checks = _checks(lanes)
    text = f"{lane.deployment} ({lane.base_model}): " + "; ".join(p for p in parts if p)
    return f"{text}; check {'; '.join(checks)}" if checks else text


def _causes(lanes: Sequence[LaneReport]) -> str:
    counts: Counter[CallStatus] = Counter()
    codes: dict[CallStatus, Counter[int | None]] = {}
    for report in lanes:
        counts.update(report.statuses)
        for status, seen in report.http_statuses.items():
            codes.setdefault(status, Counter()).update(seen)
    found = []
    for status, cause in CAUSES.items():
        if counts[status]:
            found.append(f"{cause}{_http(codes.get(status, Counter()))} ×{counts[status]}")
    return ", ".join(found)


def _http(codes: Counter[int | None]) -> str:
    """The HTTP statuses of one cause: `(HTTP 500)` when every call got the one status; with counts when they
    differ or some calls got no status line at all (a malformed body, a reset); nothing when none got one."""
    known = sorted(code for code in codes if code is not None)
    if not known:
        return ""
    if len(known) == 1 and not codes[None]:
        return f" (HTTP {known[0]})"
    parts = [f"HTTP {code} ×{codes[code]}" for code in known]
    if codes[None]:
        parts.append(f"no HTTP status ×{codes[None]}")
    return f" ({', '.join(parts)})"


def _actions(lanes: Sequence[LaneReport]) -> list[str]:
    """What the scheduler did about it, lane by lane (a lane is named by its key when its deployment has several)."""
    actions = []
    for report in lanes:
        lane = report.lane
        who = f"{lane.credential_id}: " if lane.lane_id != lane.deployment else ""
        if report.stop_cause is not None:
            calls = report.statuses.get(report.stop_cause, 0)
            actions.append(f"{who}stopped for the rest of the run after {calls} call{'s' if calls != 1 else ''}")
        if report.parks:
            failed = f", {report.probes_failed} failed probes" if report.probes_failed else ""
            end = " (still parked at the end)" if report.mode in (Mode.PARKED, Mode.PROBING) else ""
            actions.append(f"{who}parked ×{report.parks}{failed}{end}")
        if report.lowest_concurrency < report.max_concurrency:
            actions.append(
                f"{who}concurrency lowered to {report.lowest_concurrency} of {report.max_concurrency} "
                f"({report.concurrency} at the end)"
            )
        if report.episodes_lost:
            actions.append(f"{who}episodes lost mid-way ×{report.episodes_lost} ({_fates(report)})")
        if report.units_not_run:
            actions.append(f"{who}units not run, no lane left ×{report.units_not_run}")
    return actions


def _fates(report: LaneReport) -> str:
    """What became of the episodes this lane lost: started again elsewhere, or given up (left not done)."""
    restarted, given_up = report.episodes_lost - report.episodes_given_up, report.episodes_given_up
    if not given_up:
        return "started again"
    if not restarted:
        return "not started again: left not done"
    return f"{restarted} started again, {given_up} left not done"


def _checks(lanes: Sequence[LaneReport]) -> list[str]:
    """What the user should look at, by cause: names of keys and variables, never their values."""
    checks: list[str] = []
    for report in lanes:
        if report.statuses.get(CallStatus.AUTH):
            checks.append(_credential_check(report.lane))
    first = lanes[0].lane
    statuses = {status for report in lanes for status, count in report.statuses.items() if count}
    source_key = first.source.deployment_key if first.source else f"the deployment {first.deployment!r}"
    if CallStatus.NOT_FOUND in statuses:
        checks.append(f"the deployment name {first.deployment!r} ({source_key}.name)")
    if statuses & {CallStatus.UNREACHABLE, CallStatus.TRANSIENT, CallStatus.TIMEOUT}:
        checks.append(_endpoint_check(first, source_key))
    if CallStatus.RATE_LIMITED in statuses:
        checks.append(f"its limits ({source_key}.max_concurrency, {source_key}.rpm)")
    return list(dict.fromkeys(checks))


def _credential_check(lane: Lane) -> str:
    source = lane.source
    if source is None or source.credential_key is None:
        where = f"{source.deployment_key}.api_keys" if source else "api_keys"
        return f"the API key of {lane.lane_id} ({where}: none configured)"
    variables = [name for name in source.credential_env if not name.startswith(HIDDEN_PREFIX)]
    if variables:
        return f"the API key in {', '.join(variables)} ({source.credential_key})"
    if source.credential_env:
        return f"the API key given on the command line ({source.credential_key})"
    return f"the API key written in the configuration ({source.credential_key})"


def _endpoint_check(lane: Lane, source_key: str) -> str:
    named = [name for name in lane.source.endpoint_env if not name.startswith(HIDDEN_PREFIX)] if lane.source else []
    variables = ", ".join(named)
    where = f"{source_key}.endpoint{f', {variables}' if variables else ''}"
    if lane.endpoint:
        return f"the endpoint {redact_text(str(lane.endpoint))} ({where})"
    return f"the endpoint ({where})"
