"""The example third-party package (examples/fleetbench-example, installed by the README's test command) plugs in like
the built-ins: listed with its distribution, its suite and presets selectable by config group, its provider run end
to end from the command line against a real gateway on 127.0.0.1, and its suite run on the simulated models too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fleetbench_example.capitals import PROMPT_STYLES
from fleetbench_example.capitals.data import countries
from fleetbench_example.gateway_server import GatewayServer, running_gateway
from tests.conftest import RunCli, plugin_rows, stderr_lines

pytestmark = pytest.mark.slow

KEY = "gateway-secret-for-tests"
EXAMPLE = "fleetbench-example 0.1.0"


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    """A gateway serving the catalog preset's two deployments; the second fails each conversation's first request."""
    answers = {PROMPT_STYLES["direct"].format(country=c.country): c.capital for c in countries()}
    models = {"gw-capitals": "answer", "gw-capitals-2": "flaky"}
    with running_gateway(GatewayServer(KEY, models, answers)) as server:
        yield server


def _report(run_cli: RunCli, *overrides: str) -> dict[str, Any]:
    process = run_cli("report", "report.format=json", *overrides)
    assert process.returncode == 0, process.stderr
    report: dict[str, Any] = json.loads(process.stdout)
    return report


def test_plugins_lists_the_example_packages_plugins_with_distribution_version_and_options(run_cli: RunCli) -> None:
    process = run_cli("plugins")
    assert process.returncode == 0, process.stdout
    rows = plugin_rows(process.stdout)
    for key in (("providers", "gateway"), ("suites", "capitals"), ("simulators", "capitals")):
        assert rows[key]["distribution"] == EXAMPLE and rows[key]["status"] == "ok", key
    assert "prompt_style*: str = 'direct'" in rows[("suites", "capitals")]["options"]
    assert "regions: list[str] = []" in rows[("suites", "capitals")]["options"], "a type's brackets are not markup"
    assert "path: str = '/v1/generate'" in rows[("providers", "gateway")]["options"]


def test_the_gateway_provider_runs_end_to_end_from_the_command_line(run_cli: RunCli, gateway: GatewayServer) -> None:
    env = {"EXAMPLE_GATEWAY_URL": gateway.url, "EXAMPLE_GATEWAY_KEY": KEY}
    # The package's experiment preset selects its suite, its catalog (with the gateway model) and the gateway
    # provider's typed options section, so the provider's option is overridden without `+`.
    args = ("experiment=capitals_gateway", "run.models=[Gateway-Capitals]", "run.instances=4")
    process = run_cli("run", *args, "providers.gateway.connect_timeout_s=5", "scheduler.backoff_base_s=0.01", env=env)
    assert process.returncode == 0, process.stderr
    assert "planned 20 units: 0 already stored, 20 executed (success 20)" in process.stdout
    assert {request["model"] for request in gateway.requests} == {"gw-capitals", "gw-capitals-2"}
    report = _report(run_cli, *args, "models=with_gateway")  # the report covers the plan it is given
    (row,) = report["rows"]
    assert (row["base_model"], row["total"], row["correct"]) == ("Gateway-Capitals", 20, 1.0)
    shares = {s["deployment"]: s for s in report["deployment_shares"]}
    assert sum(s["units"] for s in shares.values()) == 20
    # The flaky deployment fails each conversation's first request: each of its units took a retry.
    assert shares["gw-capitals-2"]["units"] > 0
    assert shares["gw-capitals-2"]["calls"] == 2 * shares["gw-capitals-2"]["units"]
    assert shares["gw-capitals"]["calls"] == shares["gw-capitals"]["units"]
    again = run_cli("run", *args, env=env)
    assert "planned 20 units: 20 already stored, 0 executed" in again.stdout


def test_the_capitals_suite_runs_on_the_simulated_model_through_its_player(run_cli: RunCli) -> None:
    process = run_cli("run", "suite=capitals", "run.instances=5")
    assert process.returncode == 0, process.stderr
    assert "planned 25 units: 0 already stored, 25 executed" in process.stdout
    (row,) = _report(run_cli, "suite=capitals", "run.instances=5")["rows"]
    assert row["base_model"] == "Sim-Agent" and row["total"] == 25
    assert 0.5 < row["correct"] < 1.0, "Sim-Agent's strong profile answers 90% right, not all and not none"


def test_a_preset_shipped_by_the_package_is_found_through_hydras_search_path(run_cli: RunCli) -> None:
    process = run_cli("run", "suite=capitals_europe", "run.instances=2")
    assert process.returncode == 0, process.stderr
    report = _report(run_cli, "suite=capitals_europe", "run.instances=2", "report.by=[region]")
    assert [(row["region"], row["total"]) for row in report["rows"]] == [("europe", 2)]
    config = run_cli("run", "suite=capitals_europe", "suite.accept_aliases=false", "--cfg", "job")
    assert "prompt_style: quiz" in config.stdout and "accept_aliases: false" in config.stdout


def test_a_typo_in_the_third_party_suites_options_names_the_valid_ones(run_cli: RunCli) -> None:
    process = run_cli("run", "suite=capitals", "suite.region=[europe]")
    assert process.returncode == 2
    assert stderr_lines(process) == [
        "error: suite.region: no such key; valid keys under suite ('capitals'): accept_aliases, prompt_style, regions"
    ]


def test_an_invalid_option_value_is_refused_with_the_choices(run_cli: RunCli) -> None:
    process = run_cli("run", "suite=capitals", "suite.prompt_style=riddle")
    assert process.returncode == 2
    assert stderr_lines(process) == [
        "error: suite.prompt_style: 'riddle' is not valid; choices: direct, quiz (in suites plugin 'capitals')"
    ]
