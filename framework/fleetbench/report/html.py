"""`fleetbench report report.format=html`: one self-contained HTML file (no script, no external resource).

Plots are drawn by matplotlib and embedded as inline SVG: success by base model and by every factor of the suite
(the workflow suite's prompt type, difficulty, tool success rate and task type), plus flaw type when prompt types
include `flawed_*` ones, each with 95% Wilson intervals drawn as error bars. A per-deployment panel gives each
deployment's units, calls, latency percentiles, shares of 429s and of failed calls, and the drift audit's verdict,
with a plot of its latency percentiles.
"""

from __future__ import annotations

import html
import io
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench.gcpause import preload
from fleetbench.interfaces import Storage, Suite
from fleetbench.report.drift import DEFAULT_ALPHA, DEFAULT_MIN_UNITS, DeploymentDrift, audit
from fleetbench.types import ReportFilter

Z95 = 0.05
"""Significance of the drawn intervals: 95% Wilson intervals."""
PERCENTILES = (50, 90, 99)
FLAWED_PREFIX = "flawed_"


@dataclass(frozen=True)
class Rate:
    """A success count with its Wilson interval."""

    label: str
    hits: int
    total: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0


def wilson(label: str, hits: int, total: int) -> Rate:
    """The share with its 95% Wilson score interval (statsmodels)."""
    preload("statsmodels.stats.proportion")
    from statsmodels.stats.proportion import proportion_confint

    if not total:
        return Rate(label, 0, 0, 0.0, 0.0)
    low, high = proportion_confint(hits, total, alpha=Z95, method="wilson")
    return Rate(label, hits, total, float(low), float(high))


@dataclass(frozen=True)
class DeploymentStats:
    """What the per-deployment panel shows for one deployment."""

    base_model: str
    deployment: str
    units: int
    calls: int
    latency: tuple[float | None, ...]
    """Latency percentiles (PERCENTILES) of its calls, in seconds."""
    rate_limited: float
    errors: float
    drift: DeploymentDrift | None


def deployment_stats(
    calls: Iterable[Mapping[str, Any]], shares: Sequence[Mapping[str, Any]], drifts: Sequence[DeploymentDrift]
) -> list[DeploymentStats]:
    """Per (base model, deployment) of the shares: call counts, latency percentiles and failure shares."""
    import numpy as np

    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    limited: dict[tuple[str, str], int] = defaultdict(int)
    failed: dict[tuple[str, str], int] = defaultdict(int)
    for call in calls:
        key = (str(call["base_model"]), str(call["deployment"]))
        latencies[key].append(float(call["latency_s"]))
        limited[key] += call["status"] == "rate_limited"
        failed[key] += call["status"] != "ok"
    verdicts = {(d.base_model, d.deployment): d for d in drifts}
    out = []
    for share in shares:
        key = (str(share["base_model"]), str(share["deployment"]))
        values = latencies.get(key, [])
        count = len(values)
        points = tuple(float(p) for p in np.percentile(values, PERCENTILES)) if values else (None,) * len(PERCENTILES)
        out.append(
            DeploymentStats(
                key[0],
                key[1],
                int(share["units"]),
                count,
                points,
                limited[key] / count if count else 0.0,
                failed[key] / count if count else 0.0,
                verdicts.get(key),
            )
        )
    return out


def _figure_svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # the inline element, without the XML prologue and DOCTYPE


def _bar_plot(title: str, series: Mapping[str, Sequence[Rate]], ylabel: str = "share of units") -> str:
    """Grouped bars (one group per label, one bar per series) with Wilson intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    preload("matplotlib.pyplot")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(rate.label for rates in series.values() for rate in rates))
    width = 0.8 / max(len(series), 1)
    figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) * max(len(series), 1) + 2), 3.2))
    try:
        for index, (name, rates) in enumerate(series.items()):
            by_label = {rate.label: rate for rate in rates}
            xs = [i + (index - (len(series) - 1) / 2) * width for i in range(len(labels))]
            present = [by_label.get(label) for label in labels]
            values = [r.value if r else 0.0 for r in present]
            # max(0, ...): the interval's bounds are floats, and at 0% or 100% one may miss the value by an ulp.
            below = [max(0.0, r.value - r.low) if r else 0.0 for r in present]
            above = [max(0.0, r.high - r.value) if r else 0.0 for r in present]
            axes.bar(xs, values, width, yerr=[below, above], capsize=3, label=name)
        axes.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0, ha="right")
        axes.set_ylim(0, 1.05)
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        if len(series) > 1:
            axes.legend(fontsize="small")
        return _figure_svg(figure)
    finally:
        plt.close(figure)


def _latency_plot(stats: Sequence[DeploymentStats]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    preload("matplotlib.pyplot")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(4.0, 1.2 * len(stats) + 2), 3.2))
    try:
        width = 0.8 / len(PERCENTILES)
        for index, percentile in enumerate(PERCENTILES):
            xs = [i + (index - 1) * width for i in range(len(stats))]
            axes.bar(xs, [s.latency[index] or 0.0 for s in stats], width, label=f"p{percentile}")
        axes.set_xticks(range(len(stats)), [s.deployment for s in stats], rotation=30, ha="right")
        axes.set_ylabel("seconds")
        axes.set_title("Call latency by deployment")
        axes.legend(fontsize="small")
        return _figure_svg(figure)
    finally:
        plt.close(figure)


def _rates(rows: Iterable[Mapping[str, Any]], label_of: Any) -> dict[str, list[Rate]]:
    """Two series per set of aggregate rows: full success, and full or partial success."""
    full, any_success = [], []
    for row in rows:
        label = label_of(row)
        full.append(wilson(label, int(row["success"]), int(row["total"])))
        any_success.append(wilson(label, int(row["success"]) + int(row["partial"]), int(row["total"])))
    return {"full success": full, "full or partial": any_success}


def _factor_plots(storage: Storage, suite: Suite, filter: ReportFilter) -> list[tuple[str, str]]:
    """(title, svg) per factor of the suite, per base model when there are several; flaw types apart."""
    plots = []
    for factor in suite.factor_names():
        rows = [r for r in storage.aggregate(["base_model", factor], filter) if r["total"]]
        if not rows:
            continue
        models = sorted({str(r["base_model"]) for r in rows})
        series: dict[str, list[Rate]] = {}
        for model in models:
            own = [r for r in rows if r["base_model"] == model]
            rates = _rates(own, lambda r, f=factor: str(r[f]))["full or partial"]
            series[model] = rates
        plots.append((f"Success (full or partial) by {factor}", _bar_plot(f"Success by {factor}", series)))
        flawed = [r for r in rows if str(r[factor]).startswith(FLAWED_PREFIX)]
        if factor == "prompt_type" and flawed:
            by_model = {
                model: _rates(
                    [r for r in flawed if r["base_model"] == model],
                    lambda r: str(r["prompt_type"])[len(FLAWED_PREFIX) :],
                )["full or partial"]
                for model in models
            }
            plots.append(("Success (full or partial) by flaw type", _bar_plot("Success by flaw type", by_model)))
    return plots


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _interval(rate: Rate) -> str:
    return f"{_percent(rate.value)} [{_percent(rate.low)}, {_percent(rate.high)}]"


def _drift_cell(verdict: DeploymentDrift | None) -> str:
    if verdict is None:
        return "-"
    if verdict.flagged:
        p = "-" if verdict.p_adjusted is None else f"{verdict.p_adjusted:.2g}"
        diff = "-" if verdict.rate_difference is None else f"{verdict.rate_difference:+.1f} pts"
        return f"DRIFT ({diff}, p={p})"
    return verdict.note or "ok"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; }
.flag { color: #b00; font-weight: bold; }
"""


def html_report(
    storage: Storage,
    suite: Suite,
    filter: ReportFilter,
    alpha: float = DEFAULT_ALPHA,
    min_units: int = DEFAULT_MIN_UNITS,
    now: float | None = None,
    scope: str = "",
) -> str:
    """The whole report as one HTML document (the drift audit with `alpha` and `min_units`), headed by `scope`: the
    line that says what its units are comparable under (the terminal report's scope line)."""
    models = [r for r in storage.aggregate(["base_model"], filter) if r["total"]]
    shares = storage.deployment_shares(filter)
    drifts = audit(storage, filter, suite.factor_names(), alpha, min_units).deployments
    stats = deployment_stats(storage.export_calls(filter), shares, drifts)
    success = _rates(models, lambda r: str(r["base_model"]))
    figures = [("Success by model", _bar_plot("Success by model", success))] if models else []
    figures += _factor_plots(storage, suite, filter)
    if stats:
        figures.append(("Call latency by deployment", _latency_plot(stats)))
    model_rows = [
        (str(r["base_model"]), str(r["total"]), str(r["success"]), str(r["partial"]), str(r["failure"]),
         str(r["infra_error"]), _interval(full), _interval(either))
        for r, full, either in zip(models, success["full success"], success["full or partial"], strict=True)
    ]  # fmt: skip
    deployment_rows = [
        (s.base_model, s.deployment, str(s.units), str(s.calls),
         *("-" if v is None else f"{v:.3f}" for v in s.latency), _percent(s.rate_limited), _percent(s.errors),
         _drift_cell(s.drift))
        for s in stats
    ]  # fmt: skip
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() if now is None else now))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>fleetbench report: {html.escape(suite.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>fleetbench report: suite {html.escape(suite.name)}</h1>",
        f'<p class="scope">{html.escape(scope)}</p>' if scope else "",
        f"<p>Generated {stamp}. Intervals are 95% Wilson score intervals; units not done (infrastructure errors) "
        "are counted apart and never as failures.</p>",
        "<h2>Base models</h2>",
        _table(
            (
                "model",
                "units",
                "full",
                "partial",
                "failure",
                "not done",
                "full success [95% CI]",
                "full or partial [95% CI]",
            ),
            model_rows,
        ),
        "<h2>Deployments</h2>",
        _table(
            (
                "model",
                "deployment",
                "units",
                "calls",
                *(f"latency p{p} (s)" for p in PERCENTILES),
                "429 share",
                "failed calls",
                "drift audit",
            ),
            deployment_rows,
        ),
        "<h2>Plots</h2>",
        *(
            f'<figure class="plot"><figcaption>{html.escape(title)}</figcaption>{svg}</figure>'
            for title, svg in figures
        ),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
