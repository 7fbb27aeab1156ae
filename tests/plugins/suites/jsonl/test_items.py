"""The jsonl suite's `items` mode: distinct items by default (refused when a category holds too few), every item once
(`all`), or deliberate repeats (`cycle`); the mode never changes what a unit asks, so it is not part of the unit key."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fleetbench.config import compose_config, resolve_run
from fleetbench.errors import ConfigError
from fleetbench.interfaces import Suite
from fleetbench.testing.units import plan_units
from fleetbench.types import Unit
from fleetbench_plugins.suites.jsonl import JsonlOptions, JsonlSuite
from tests.conftest import RunCli, stderr_lines

TINY = [("t1", "tiny"), ("t2", "tiny")]
BIG = [(f"b{i}", "big") for i in range(5)]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Two categories: `tiny` (2 items) and `big` (5 items)."""
    path = tmp_path / "data" / "small.jsonl"
    path.parent.mkdir()
    rows = [
        {"id": i, "prompt": f"What is {n}+1?", "reference": str(n + 1), "category": c}
        for n, (i, c) in enumerate(TINY + BIG)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def iter_units(suite: Suite, models: list[str], instances: int, seed: int) -> list[Unit]:
    return [u for model in models for u in plan_units(suite, suite.options, model, instances, seed)]


def _suite(dataset: Path, items: str) -> JsonlSuite:
    return JsonlSuite(JsonlOptions(dataset=str(dataset), items=items))


def _asked(suite: JsonlSuite, units: list[Unit]) -> Counter[tuple[str, str]]:
    """(category, item id) → how many units ask it."""
    return Counter((str(u.cell.factor("category")), suite.item_for(u).item_id) for u in units)


def test_all_asks_every_item_of_every_category_exactly_once(dataset: Path) -> None:
    suite = _suite(dataset, "all")
    units = list(iter_units(suite, ["Sim-Agent"], 20, 0))
    assert _asked(suite, units) == Counter({(c, i): 1 for i, c in TINY + BIG})


def test_distinct_refuses_more_units_than_a_category_holds_naming_the_key_and_the_size(dataset: Path) -> None:
    overrides = [f"suite.dataset={dataset}", "run.instances=3"]
    with pytest.raises(ConfigError) as raised:
        resolve_run(compose_config(overrides))
    message = str(raised.value)
    assert message.startswith("run.instances: 3 units per cell, but category 'tiny'")
    assert "holds 2 items" in message and "suite.items=all" in message and "suite.items=cycle" in message
    assert "\n" not in message
    # Within the smallest category's size, distinct items are asked, none twice.
    spec = resolve_run(compose_config([f"suite.dataset={dataset}", "run.instances=2"]))
    units = list(iter_units(spec.suite, ["Sim-Agent"], 2, 0))
    assert set(_asked(spec.suite, units).values()) == {1}


def test_cycle_repeats_items_only_when_asked_to(dataset: Path) -> None:
    suite = _suite(dataset, "cycle")
    units = list(iter_units(suite, ["Sim-Agent"], 4, 0))
    asked = _asked(suite, units)
    assert asked[("tiny", "t1")] == asked[("tiny", "t2")] == 2
    assert sum(asked.values()) == 8


def test_the_mode_changes_how_many_units_a_plan_holds_never_what_a_unit_asks(dataset: Path) -> None:
    plans = {
        mode: list(iter_units(_suite(dataset, mode), ["Sim-Agent"], instances, 3))
        for mode, instances in (("distinct", 2), ("all", 1), ("cycle", 7))
    }
    asked = {mode: {u.key: _suite(dataset, mode).item_for(u).item_id for u in units} for mode, units in plans.items()}
    # The same key asks the same item in every mode, so leaving `items` out of the key is sound...
    for mode, other in (("distinct", "all"), ("all", "cycle"), ("distinct", "cycle")):
        for key in asked[mode].keys() & asked[other].keys():
            assert asked[mode][key] == asked[other][key]
    # ...and a larger plan contains the smaller one's units: `all` after `distinct` runs only the new ones.
    assert set(asked["distinct"]) < set(asked["all"]) < set(asked["cycle"])
    identities = {repr(dict(_suite(dataset, mode).identity())) for mode in plans}
    assert len(identities) == 1


def test_editing_the_dataset_changes_every_key(dataset: Path) -> None:
    before = {u.key for u in iter_units(_suite(dataset, "all"), ["Sim-Agent"], 1, 0)}
    dataset.write_text(dataset.read_text().replace("What is 0+1?", "What is 0 + 1?"))
    after = {u.key for u in iter_units(_suite(dataset, "all"), ["Sim-Agent"], 1, 0)}
    assert before.isdisjoint(after)


def test_the_cli_refuses_with_one_line_and_writes_nothing(run_cli: RunCli, dataset: Path, tmp_path: Path) -> None:
    process = run_cli("run", f"suite.dataset={dataset}")  # run.instances defaults to 20
    assert process.returncode == 2, process.stderr
    lines = stderr_lines(process)
    assert len(lines) == 1 and lines[0].startswith("error: run.instances: 20 units per cell, but category 'tiny'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"], "nothing may be written on bad input"


def test_the_cli_runs_every_item_once_reusing_what_a_smaller_plan_stored(run_cli: RunCli, dataset: Path) -> None:
    first = run_cli("run", f"suite.dataset={dataset}", "run.instances=2", "run.progress=off")
    assert first.returncode == 0, first.stderr
    assert "planned 4 units: 0 already stored, 4 executed" in first.stdout
    every = run_cli("run", f"suite.dataset={dataset}", "suite.items=all", "run.progress=off")
    assert "planned 7 units: 4 already stored, 3 executed" in every.stdout
    report = run_cli("report", f"suite.dataset={dataset}", "suite.items=all", "report.format=json")
    assert json.loads(report.stdout)["rows"][0]["total"] == 7
