"""`prompt_tokens` and `completion_tokens` are the same statistic in every installed suite: the mean per unit of the
tokens its calls sent / received (so a report compares them across suites)."""

from __future__ import annotations

import pytest

from fleetbench import registry

TOKEN_METRICS = {
    "prompt_tokens": "Prompt tokens sent by the unit's calls (mean per unit)",
    "completion_tokens": "Completion tokens received by the unit's calls (mean per unit)",
}


@pytest.mark.parametrize("suite_name", registry.installed_names("suites"))
def test_token_metrics_are_means_per_unit_with_one_description(suite_name: str) -> None:
    suite = registry.load("suites", {"plugin": suite_name}, "suite").create()
    declared = {metric.name: metric for metric in suite.metrics()}
    assert set(TOKEN_METRICS) <= declared.keys(), f"{suite_name} reports no token metrics"
    for name, description in TOKEN_METRICS.items():
        assert (declared[name].aggregate, declared[name].description) == ("mean", description), suite_name
