"""Result identity: every option that can change a unit's result enters its key, and nothing else does.

The classification tables below list every option of every built-in plugin and of the catalog. A new option fails
`test_every_option_is_classified` until it is added here, on purpose: whoever adds it must decide.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from fleetbench import registry
from fleetbench.config import compose_config, resolve_run
from fleetbench.config.schema import DeploymentConf, GenerationConf, ModelConf
from fleetbench.interfaces import AFFECTS_RESULT
from fleetbench.runner import RunSummary, run

RESULT, NEUTRAL = True, False

PLUGIN_OPTIONS: dict[tuple[str, str, str], dict[str, bool]] = {
    ("providers", "simulated", "Options"): {"seed": RESULT},
    ("providers", "simulated", "ModelParams"): {"profile": RESULT, "qa_accuracy": RESULT},
    ("providers", "simulated", "DeploymentParams"): {
        "latency_ms": NEUTRAL, "jitter_ms": NEUTRAL, "transient_error_rate": NEUTRAL, "rate_limit_rate": NEUTRAL,
        "retry_after_s": NEUTRAL, "hang_rate": NEUTRAL, "empty_rate": NEUTRAL, "max_in_flight": NEUTRAL,
        "refuse_connections": NEUTRAL, "auth_failure": NEUTRAL, "auth_failure_keys": NEUTRAL, "not_found": NEUTRAL,
        "outage": NEUTRAL, "outage_after": NEUTRAL, "outage_requests": NEUTRAL,
        # The drift audit's test fixture: a deployment serving another profile must not change any unit key.
        "profile": NEUTRAL,
    },
    ("providers", "litellm", "Options"): {"protocol_headers": NEUTRAL, "drop_params": RESULT},
    ("providers", "litellm", "ModelParams"): {
        "input_cost_per_token": NEUTRAL, "output_cost_per_token": NEUTRAL, "cost_model": NEUTRAL,
    },
    ("providers", "litellm", "DeploymentParams"): {},
    ("storage", "sql", "Options"): {
        "url": NEUTRAL,
        "echo": NEUTRAL,
        "busy_timeout_s": NEUTRAL,
        "idle_transaction_timeout_s": NEUTRAL,
    },
    ("suites", "jsonl", "Options"): {
        "dataset": NEUTRAL, "scorer": RESULT, "categories": NEUTRAL, "system_prompt": RESULT, "items": NEUTRAL,
    },
    ("suites", "workflow", "Options"): {
        "prompt_types": NEUTRAL, "difficulties": NEUTRAL, "tool_success_rates": NEUTRAL, "task_types": NEUTRAL,
        "severity": RESULT, "max_turns": RESULT, "scoring": RESULT, "score_against": RESULT, "multi_call": RESULT,
        "help_reveals_required_tools": RESULT, "substring_match": RESULT, "validate_arguments": RESULT,
        "clean_run_recovery": RESULT, "native_tools": RESULT, "classifier": RESULT,
        "tool_registry": NEUTRAL, "task_file": NEUTRAL,
    },
    ("naming", "catalog", "Options"): {"unknown": NEUTRAL, "suffix_pattern": NEUTRAL},
    ("sharding", "even", "Options"): {"failover": NEUTRAL},
    ("sharding", "weighted", "Options"): {"failover": NEUTRAL},
    ("sharding", "dynamic", "Options"): {},
    ("simulators", "jsonl", "Options"): {},
    ("simulators", "workflow", "Options"): {},
}  # fmt: skip

CATALOG_OPTIONS: dict[type[Any], dict[str, bool]] = {
    ModelConf: {
        "name": RESULT, "provider": RESULT, "route": NEUTRAL, "aliases": NEUTRAL, "tool_calling": RESULT,
        "deployments": NEUTRAL, "params": NEUTRAL, "generation": RESULT,
    },
    GenerationConf: {
        "temperature": RESULT, "top_p": RESULT, "max_tokens": RESULT, "seed": RESULT, "stop": RESULT,
        "reasoning_effort": RESULT,
    },
    DeploymentConf: {
        "name": NEUTRAL, "endpoint": NEUTRAL, "api_version": NEUTRAL, "api_keys": NEUTRAL, "max_concurrency": NEUTRAL,
        "rpm": NEUTRAL, "weight": NEUTRAL, "params": NEUTRAL,
    },
}  # fmt: skip


def _classification(options_cls: type[Any]) -> dict[str, bool | None]:
    return {f.name: f.metadata.get(AFFECTS_RESULT) for f in dataclasses.fields(options_cls)}


def test_every_built_in_plugin_is_in_the_table() -> None:
    installed = {(info.kind, info.name) for info in registry.listing() if info.target.startswith("fleetbench_plugins")}
    assert installed == {(kind, name) for kind, name, _ in PLUGIN_OPTIONS}


@pytest.mark.parametrize(("kind", "name", "attribute"), sorted(PLUGIN_OPTIONS))
def test_every_option_is_classified(kind: str, name: str, attribute: str) -> None:
    options_cls = getattr(registry.plugin_class(kind, name, "test"), attribute)
    assert _classification(options_cls) == PLUGIN_OPTIONS[(kind, name, attribute)]


@pytest.mark.parametrize("conf", list(CATALOG_OPTIONS), ids=lambda c: c.__name__)
def test_every_catalog_field_is_classified(conf: type[Any]) -> None:
    assert _classification(conf) == CATALOG_OPTIONS[conf]


def _run(db: Path, *overrides: str) -> RunSummary:
    base = [f"storage.url=sqlite:///{db}", "run.instances=2", "run.progress=off", "suite.categories=[arithmetic]"]
    return run(resolve_run(compose_config([*base, *overrides])))


NEUTRAL_CHANGES = [
    "models.sim_agent.deployments.0.params.latency_ms=1",
    "models.sim_agent.deployments.1.max_concurrency=2",
    "models.sim_agent.deployments.2.rpm=100000",
    "+models.sim_agent.deployments.0.api_keys=[some-key]",
    "sharding=even",
    "scheduler.request_timeout_s=99",
    "storage.busy_timeout_s=5",
    "storage.idle_transaction_timeout_s=60",
    "run.label=another",
    "suite.dataset=builtin",
]
RESULT_CHANGES = [
    "suite.scorer=contains",
    "suite.system_prompt=Reply tersely.",
    "providers.simulated.seed=1",
    "models.sim_agent.params.profile=weak",
    "+models.sim_agent.params.qa_accuracy=0.5",
    "models.sim_agent.generation.temperature=0.7",
    "models.sim_agent.generation.max_tokens=64",
    "models.sim_agent.tool_calling=native",
    "run.seed=5",
]


@pytest.mark.parametrize("change", NEUTRAL_CHANGES)
def test_a_neutral_change_reuses_every_stored_result(tmp_path: Path, change: str) -> None:
    db = tmp_path / "identity.db"
    assert _run(db).executed == 2
    again = _run(db, change)
    assert (again.executed, again.already_stored) == (0, 2)


@pytest.mark.parametrize("change", RESULT_CHANGES)
def test_a_result_relevant_change_runs_every_unit_again(tmp_path: Path, change: str) -> None:
    db = tmp_path / "identity.db"
    assert _run(db).executed == 2
    again = _run(db, change)
    assert (again.executed, again.already_stored) == (2, 0)
