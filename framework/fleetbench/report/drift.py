"""Deployment drift audit: does every deployment of a base model behave like that model?

A base model's deployments should be interchangeable: fleetbench spreads a model's units over them and counts every
result under the base model. A deployment that serves another model (a wrong checkpoint, a quantised copy, a
gateway routing to a cheaper model) silently changes the numbers. The audit compares the deployments of each base
model over the cells they both ran:

- For every pair of deployments of a model, a Cochran–Mantel–Haenszel test (statsmodels' `StratifiedTable`) of
  full success against anything else, stratified by cell: units of different cells (prompt type, difficulty, ...)
  are never compared with each other, so a deployment that happened to run more hard cells is not penalised.
- The p-values of every pair in the audit are adjusted together with Holm's method (family-wise error control).
- A deployment is flagged when it differs significantly from more than half of its siblings: with three deployments
  of which one serves another model, that one differs from both others, while each honest one differs only from it.
  With exactly two deployments the audit can say that they differ, not which one is off: both are flagged.

Effect sizes are Mantel–Haenszel estimates over the shared cells against the pooled unflagged siblings: the pooled
odds ratio of full success and the weighted difference in full-success rate (percentage points).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench.gcpause import preload
from fleetbench.interfaces import Storage
from fleetbench.types import ReportFilter

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_UNITS = 20


@dataclass(frozen=True)
class PairTest:
    """One stratified test between two deployments of a base model."""

    base_model: str
    first: str
    second: str
    units: int
    """Units of the two deployments in the cells both ran (the strata of the test)."""
    cells: int
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None = None
    significant: bool = False


@dataclass(frozen=True)
class DeploymentDrift:
    """The verdict on one deployment."""

    base_model: str
    deployment: str
    units: int
    success_rate: float | None
    """Full-success rate of the deployment over the cells it shares with its reference siblings."""
    reference_rate: float | None
    """Full-success rate of the reference siblings over the same cells."""
    rate_difference: float | None
    """Mantel–Haenszel weighted difference (deployment − reference), in percentage points."""
    odds_ratio: float | None
    """Mantel–Haenszel pooled odds ratio of full success (deployment vs reference)."""
    p_adjusted: float | None
    """The smallest Holm-adjusted p-value of the deployment's pairwise tests (None: nothing could be tested)."""
    differs_from: tuple[str, ...]
    flagged: bool
    note: str = ""


@dataclass(frozen=True)
class DriftAudit:
    """Every pairwise test and every deployment's verdict."""

    alpha: float
    min_units: int
    pairs: list[PairTest] = field(default_factory=list)
    deployments: list[DeploymentDrift] = field(default_factory=list)

    @property
    def flagged(self) -> list[DeploymentDrift]:
        return [d for d in self.deployments if d.flagged]


Counts = dict[tuple[Any, ...], tuple[int, int]]
"""Per cell (factor values): (full successes, completed units)."""


def audit(
    storage: Storage,
    filter: ReportFilter,
    factors: Sequence[str],
    alpha: float = DEFAULT_ALPHA,
    min_units: int = DEFAULT_MIN_UNITS,
) -> DriftAudit:
    """Audit every base model the filter covers (one aggregate query: per model, deployment and cell)."""
    rows = storage.aggregate(["base_model", "deployment", *factors], filter)
    counts: dict[str, dict[str, Counts]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        cell = tuple(_hashable(row[name]) for name in factors)
        if int(row["total"]):
            counts[str(row["base_model"])][str(row["deployment"])][cell] = (int(row["success"]), int(row["total"]))
    return audit_counts(counts, alpha, min_units)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def audit_counts(counts: Mapping[str, Mapping[str, Counts]], alpha: float, min_units: int) -> DriftAudit:
    """The audit of per-model, per-deployment, per-cell counts (see `audit`)."""
    preload("statsmodels.stats.multitest", "statsmodels.stats.contingency_tables")
    from statsmodels.stats.multitest import multipletests

    pairs: list[PairTest] = []
    for base_model in sorted(counts):
        deployments = sorted(counts[base_model])
        for index, first in enumerate(deployments):
            for second in deployments[index + 1 :]:
                pairs.append(_pair_test(base_model, first, second, counts[base_model], min_units))
    tested = [i for i, pair in enumerate(pairs) if pair.p_value is not None]
    if tested:
        reject, adjusted, _, _ = multipletests([pairs[i].p_value for i in tested], alpha=alpha, method="holm")
        for i, significant, p in zip(tested, reject, adjusted, strict=True):
            pair = pairs[i]
            pairs[i] = PairTest(
                pair.base_model, pair.first, pair.second, pair.units, pair.cells, pair.statistic, pair.p_value,
                float(p), bool(significant),
            )  # fmt: skip
    verdicts: list[DeploymentDrift] = []
    for base_model in sorted(counts):
        verdicts.extend(_verdicts(base_model, counts[base_model], [p for p in pairs if p.base_model == base_model]))
    return DriftAudit(alpha, min_units, pairs, verdicts)


def _shared(first: Counts, second: Counts) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    return [(first[cell], second[cell]) for cell in sorted(first.keys() & second.keys(), key=repr)]


def _pair_test(base_model: str, first: str, second: str, model: Mapping[str, Counts], min_units: int) -> PairTest:
    strata = _shared(model[first], model[second])
    units = sum(a[1] + b[1] for a, b in strata)
    if units < min_units or len(strata) == 0:
        return PairTest(base_model, first, second, units, len(strata), None, None)
    statistic, p_value = _cmh(strata)
    return PairTest(base_model, first, second, units, len(strata), statistic, p_value)


def _tables(strata: Sequence[tuple[tuple[int, int], tuple[int, int]]]) -> list[list[list[int]]]:
    """2×2 tables (rows: the two groups; columns: full success, not) of strata that carry information (n ≥ 2)."""
    return [
        [[a_hit, a_total - a_hit], [b_hit, b_total - b_hit]]
        for (a_hit, a_total), (b_hit, b_total) in strata
        if a_total + b_total >= 2
    ]


def _cmh(strata: Sequence[tuple[tuple[int, int], tuple[int, int]]]) -> tuple[float | None, float]:
    """The CMH statistic and p-value (with continuity correction); p = 1 when no stratum has any variation in
    outcome, since then nothing distinguishes the two groups."""
    import numpy as np
    from statsmodels.stats.contingency_tables import StratifiedTable

    tables = _tables(strata)
    varied = [t for t in tables if (t[0][0] + t[1][0]) not in (0, sum(t[0]) + sum(t[1]))]
    if not varied:
        return None, 1.0
    result = StratifiedTable(np.array(varied, dtype=float).transpose(1, 2, 0)).test_null_odds(correction=True)
    return float(result.statistic), float(result.pvalue)


def _verdicts(base_model: str, model: Mapping[str, Counts], pairs: Sequence[PairTest]) -> list[DeploymentDrift]:
    deployments = sorted(model)
    differs = {
        d: tuple(sorted(_other(p, d) for p in pairs if p.significant and d in (p.first, p.second))) for d in deployments
    }
    siblings = len(deployments) - 1
    flagged = {d for d in deployments if len(differs[d]) * 2 > siblings}
    out = []
    for deployment in deployments:
        own = [p for p in pairs if deployment in (p.first, p.second)]
        adjusted = [p.p_adjusted for p in own if p.p_adjusted is not None]
        reference = [d for d in deployments if d != deployment and d not in flagged] or [
            d for d in deployments if d != deployment
        ]
        effect = _effect(model[deployment], [model[d] for d in reference])
        note = ""
        if not siblings:
            note = "only deployment of its model: nothing to compare"
        elif not adjusted:
            note = "too few shared units to test"
        elif deployment in flagged and siblings == 1:
            note = "two deployments differ: the audit cannot tell which one is off"
        out.append(
            DeploymentDrift(
                base_model,
                deployment,
                sum(total for _, total in model[deployment].values()),
                *effect,
                min(adjusted) if adjusted else None,
                differs[deployment],
                deployment in flagged,
                note,
            )
        )
    return out


def _other(pair: PairTest, deployment: str) -> str:
    return pair.second if pair.first == deployment else pair.first


def _effect(own: Counts, references: Sequence[Counts]) -> tuple[float | None, float | None, float | None, float | None]:
    """(own rate, reference rate, MH rate difference in points, MH odds ratio) over the cells shared with the
    pooled references."""
    pooled: Counts = {}
    for reference in references:
        for cell, (hit, total) in reference.items():
            old = pooled.get(cell, (0, 0))
            pooled[cell] = (old[0] + hit, old[1] + total)
    strata = _shared(own, pooled)
    if not strata:
        return None, None, None, None
    own_hit = sum(a[0] for a, _ in strata)
    own_total = sum(a[1] for a, _ in strata)
    ref_hit = sum(b[0] for _, b in strata)
    ref_total = sum(b[1] for _, b in strata)
    # Mantel–Haenszel weights n_a·n_b/(n_a+n_b): the rate difference within each cell, pooled.
    weights = [a[1] * b[1] / (a[1] + b[1]) for a, b in strata]
    difference = sum(w * (a[0] / a[1] - b[0] / b[1]) for w, (a, b) in zip(weights, strata, strict=True))
    numerator = sum(a[0] * (b[1] - b[0]) / (a[1] + b[1]) for a, b in strata)
    denominator = sum((a[1] - a[0]) * b[0] / (a[1] + b[1]) for a, b in strata)
    odds = numerator / denominator if denominator else (math.inf if numerator else None)
    return own_hit / own_total, ref_hit / ref_total, 100.0 * difference / sum(weights), odds
