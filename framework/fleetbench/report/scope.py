"""Which stored units a report covers: by default exactly the units the composed configuration plans.

A unit is comparable with another only under the same suite scope (suite version, data digests, result-relevant
options such as the scoring variant), model scope and seed; an experiment is the set of cells and instance counts
its configuration plans. So `fleetbench report experiment=phase5_3` reads the phase's plan — the same scopes, seed,
cells and instance indices a `fleetbench run experiment=phase5_3` would run — and nothing else, however many other
datasets, scoring variants, seeds or experiments the database holds.

`report.scope=all` (and any `report.run_id` / `report.label`) widens the report to every stored unit of the suite; rows
are then split by suite scope, model scope and seed, so units that are not comparable still never share a row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench.config.spec import PlanSpec, RunSpec
from fleetbench.errors import UserError
from fleetbench.plan import cell_key
from fleetbench.types import PlanScope

SCOPE_MODES = ("config", "all")
SCOPE_COLUMNS = ("suite_scope", "model_scope", "seed")
"""Group columns a widened report always adds, so incomparable units never share a row."""
RUN_ID_SHOWN = 12
"""Characters of a run id that `fleetbench run` and `fleetbench runs` print (any unique prefix is accepted)."""


@dataclass(frozen=True)
class ReportScope:
    """What a report covers: the plans of the composed configuration (`plans`), or every scope (`plans` None, rows
    split by `SCOPE_COLUMNS`)."""

    plans: tuple[PlanScope, ...] | None
    description: str
    """One line for the reader: what the rows are comparable under."""

    @property
    def split_by(self) -> tuple[str, ...]:
        return () if self.plans is not None else SCOPE_COLUMNS

    def rows_by(self, by: Sequence[str]) -> list[str]:
        """What report rows are split by: the scope's own splits first (a widened report's suite scope, model scope
        and seed, so units that are not comparable never share a row), then `by`."""
        return [*self.split_by, *(name for name in by if name not in self.split_by)]


def widened_scope(suite: str, run_id: str | None = None, label: str | None = None) -> ReportScope:
    """Every stored unit of the suite (of run `run_id`, of the runs labelled `label`), rows split by suite scope,
    model scope and seed."""
    stored_by = ""
    if run_id is not None:
        stored_by = f" from run {run_id[:12]}" + (f" (labelled {label!r})" if label is not None else "")
    elif label is not None:
        stored_by = f" from the runs labelled {label!r}"
    return ReportScope(
        None, f"scope: every stored unit of suite {suite}{stored_by}, one row per suite scope, model scope and seed"
    )


def config_plans(spec: PlanSpec | RunSpec) -> tuple[PlanScope, ...]:
    """The plan of every selected model of a validated configuration, as the report filter reads it."""
    plans = []
    for model in spec.models:
        scope = spec.scopes.by_model[model.name]
        cells = {
            cell_key(cell): spec.suite.instances(cell, spec.run.instances) for cell in spec.suite.cells(model.name)
        }
        plans.append(PlanScope(scope.suite, scope.model, spec.run.seed, cells))
    return tuple(plans)


def config_scope(spec: PlanSpec | RunSpec) -> ReportScope:
    """The report scope of a composed configuration, described by its suite scope, seed and experiment."""
    suite = spec.scopes.descriptions.get(spec.scopes.by_model[spec.models[0].name].suite, {})
    described = describe_suite_scope(suite)
    experiment = f", experiment {spec.experiment}" if spec.experiment else ""
    text = f"scope: {described}, seed {spec.run.seed}{experiment}, {spec.run.instances} instances per cell"
    return ReportScope(config_plans(spec), text)


def describe_suite_scope(description: Mapping[str, Any]) -> str:
    """`suite workflow 1.0, data <digests>, options k=v ...` for one suite scope description."""
    data = ", ".join(f"{k} {str(v)[:12]}" for k, v in sorted((description.get("data") or {}).items()))
    options = " ".join(f"{k}={_shown(v)}" for k, v in sorted((description.get("options") or {}).items()))
    parts = [f"suite {description.get('suite', '?')} {description.get('version', '')}".rstrip()]
    if data:
        parts.append(f"data {data}")
    if options:
        parts.append(f"options {options}")
    return ", ".join(parts)


SHOWN_CHARS = 40
"""How much of a long option value (a system prompt, say) the scope line shows before its digest."""


def _shown(value: Any) -> str:
    """An option value as the scope line shows it: in full when short, else its start and a digest of the whole,
    which tells two long values apart without printing a paragraph into every report."""
    text = str(value)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    if any(character < " " for character in text):  # a newline or tab would break the line: shown escaped
        text = json.dumps(text, ensure_ascii=False)[1:-1]
    if len(text) <= SHOWN_CHARS + 12:
        return text
    return f"{text[:SHOWN_CHARS]}… (sha256 {digest})"


def resolve_run_id(prefix: str, runs: Sequence[Mapping[str, Any]]) -> str:
    """The one recorded run id starting with `prefix`; none or several is a `UserError` naming the choices."""
    if not prefix:
        raise UserError("report.run_id: empty; give a run id or a unique prefix (see `fleetbench runs`)")
    matches = [str(run["run_id"]) for run in runs if str(run["run_id"]).startswith(prefix)]
    if not matches:
        shown = ", ".join(str(run["run_id"])[:RUN_ID_SHOWN] for run in runs[:5]) or "none recorded"
        raise UserError(f"report.run_id: no run id starts with {prefix!r}; recent runs: {shown} (fleetbench runs)")
    if len(matches) > 1:
        shown = ", ".join(m[:RUN_ID_SHOWN] for m in matches[:5])
        raise UserError(f"report.run_id: {prefix!r} matches {len(matches)} runs ({shown}); give more characters")
    return matches[0]
