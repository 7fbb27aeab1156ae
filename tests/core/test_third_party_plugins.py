"""A third-party package registers plugins through entry points exactly as the built-ins do (real subprocesses).

The package is written to a temporary directory with its own dist-info, so discovery goes through the same
importlib.metadata / stevedore path as an installed distribution.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import RunCli, plugin_rows, stderr_lines

PLUGIN_SOURCE = '''
from fleetbench.interfaces import Dispatch, ShardingStrategy


class Reversed(Dispatch):
    """Hands units out last-first, to any lane (a small plan: it lists the source)."""

    def __init__(self, source, lanes):
        self._units = list(source.stream())

    def next_unit(self, lane_id):
        return self._units.pop() if self._units else None

    def planned(self, lane_id):
        return None


class ReversedSharding(ShardingStrategy):
    def dispatch(self, source, lanes):
        return Reversed(source, lanes)
'''

BROKEN_CONTRACTS = '''
from fleetbench.interfaces import Provider, ShardingStrategy, Suite


class IncompleteSuite(Suite):
    """Never implements run_episode."""

    name = "incomplete"
    version = "1"

    def cells(self, base_model):
        return iter(())

    def metrics(self):
        return ()


class NarrowSharding(ShardingStrategy):
    """dispatch() without the lanes the contract passes."""

    def dispatch(self, source):
        return None


class BlockingProvider(Provider):
    """complete() is not a coroutine."""

    def complete(self, lane, request):
        return None

    def classify(self, exc):
        return None
'''

CONTRACT_BREACHES = {
    ("suites", "incomplete"): "IncompleteSuite does not implement run_episode of Suite",
    ("sharding", "narrow"): "NarrowSharding.dispatch(self, source) does not match ShardingStrategy.dispatch(self, "
    "source: 'UnitSource', lanes: 'Sequence[Lane]') -> 'Dispatch': missing parameter 'lanes'",
    ("providers", "blocking"): "BlockingProvider.complete(self, lane, request) does not match Provider.complete(self, "
    "lane: 'Lane', request: 'Request') -> 'Completion': it must be 'async def'",
}
TARGETS = {"incomplete": "IncompleteSuite", "narrow": "NarrowSharding", "blocking": "BlockingProvider"}


@pytest.fixture
def third_party(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    (site / "fbtp_sharding").mkdir(parents=True)
    (site / "fbtp_sharding" / "__init__.py").write_text(PLUGIN_SOURCE)
    (site / "fbtp_broken").mkdir()
    (site / "fbtp_broken" / "__init__.py").write_text("import a_module_that_does_not_exist\n")
    (site / "fbtp_contracts").mkdir()
    (site / "fbtp_contracts" / "__init__.py").write_text(BROKEN_CONTRACTS)
    dist = site / "fbtp-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fbtp\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""
        [fleetbench.sharding]
        reversed = fbtp_sharding:ReversedSharding

        [fleetbench.suites]
        broken = fbtp_broken:BrokenSuite
        incomplete = fbtp_contracts:IncompleteSuite

        [fleetbench.sharding]
        narrow = fbtp_contracts:NarrowSharding

        [fleetbench.providers]
        blocking = fbtp_contracts:BlockingProvider
    """)
    )
    return {"PYTHONPATH": str(site)}


def test_listing_shows_third_party_plugins_and_names_the_broken_one(
    run_cli: RunCli, third_party: dict[str, str]
) -> None:
    process = run_cli("plugins", env=third_party)
    rows = {
        tuple(cell.strip() for cell in line.split("│")[1:3]): line
        for line in process.stdout.splitlines()
        if line.startswith("│")
    }
    assert "ok" in rows[("sharding", "reversed")] and "fbtp 0.1" in rows[("sharding", "reversed")]
    assert "failed to load" in rows[("suites", "broken")]
    assert "ModuleNotFoundError" in process.stdout and "a_module_that_does_not_exist" in process.stdout
    assert "ok" in rows[("suites", "jsonl")], "one broken plugin must not break the others"
    assert process.returncode == 1


def test_a_third_party_sharding_plugin_runs_end_to_end(run_cli: RunCli, third_party: dict[str, str]) -> None:
    process = run_cli("run", "sharding=reversed", "run.instances=2", env=third_party)
    assert process.returncode == 0, process.stderr
    assert "10 executed" in process.stdout


def test_unknown_plugin_lists_installed_third_party_choices(run_cli: RunCli, third_party: dict[str, str]) -> None:
    process = run_cli("run", "sharding=nope", env=third_party)
    assert process.returncode == 2
    assert "valid choices: dynamic, even, reversed, weighted" in process.stderr


def test_loading_a_broken_plugin_names_it(run_cli: RunCli, third_party: dict[str, str]) -> None:
    process = run_cli("run", "suite=broken", env=third_party)
    assert process.returncode != 0
    assert "plugin 'broken' in group fleetbench.suites failed to load" in process.stderr
    assert "a_module_that_does_not_exist" in process.stderr


def test_listing_names_each_plugin_that_breaks_its_contract_with_the_method_and_mismatch(
    run_cli: RunCli, third_party: dict[str, str]
) -> None:
    process = run_cli("plugins", env=third_party)
    assert process.returncode == 1
    rows = plugin_rows(process.stdout)
    for (kind, name), mismatch in CONTRACT_BREACHES.items():
        assert rows[(kind, name)]["distribution"] == "fbtp 0.1"
        assert rows[(kind, name)]["status"] == (
            f"plugin {name!r} (entry point fleetbench.{kind}: {name} = fbtp_contracts:{TARGETS[name]}) breaks the "
            f"contract: {mismatch}"
        )
    for working in (("suites", "jsonl"), ("storage", "sql"), ("sharding", "dynamic"), ("sharding", "reversed")):
        assert rows[working]["status"] == "ok", working


@pytest.mark.parametrize(
    ("override", "kind", "name"),
    [
        ("suite=incomplete", "suites", "incomplete"),
        ("sharding=narrow", "sharding", "narrow"),
        ("models.sim_agent.provider=blocking", "providers", "blocking"),
    ],
)
def test_selecting_a_plugin_that_breaks_its_contract_is_refused_before_anything_runs(
    run_cli: RunCli, third_party: dict[str, str], tmp_path: Path, override: str, kind: str, name: str
) -> None:
    process = run_cli("run", override, "run.instances=1", env=third_party)
    assert process.returncode == 1
    assert stderr_lines(process) == [
        f"error: plugin {name!r} (entry point fleetbench.{kind}: {name} = fbtp_contracts:{TARGETS[name]}) breaks the "
        f"contract: {CONTRACT_BREACHES[(kind, name)]}"
    ]
    assert not (tmp_path / "fleetbench.db").exists() and not (tmp_path / "outputs").exists()
