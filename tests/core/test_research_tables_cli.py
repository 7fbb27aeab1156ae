"""`fleetbench report report.tables=...`: the original's research tables from real runs, on SQLite and PostgreSQL.

Every count is checked against the plain report of the same units, every interval against the Wilson formula and every
paired p-value against McNemar's exact test, both computed here by hand.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import pytest

from tests.conftest import RunCli, stderr_lines

pytestmark = pytest.mark.slow

SUITE = [
    "suite=workflow",
    "suite.prompt_types=[optimal,cot]",
    "suite.difficulties=[easy]",
    "suite.tool_success_rates=[0.8,0.6]",
    "suite.task_types=[basic_task,simple_task]",
    "run.instances=3",
    "run.models=[Sim-Agent,Sim-Weak]",
]
Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal distribution


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_overrides(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "sqlite":
        return []
    url: str = request.getfixturevalue("postgres_url")
    return ["storage=postgres", f"storage.url={url}"]


def wilson(successes: int, trials: int) -> tuple[float, float]:
    p, n = successes / trials, trials
    center = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    return center - half, center + half


def mcnemar(only_a: int, only_b: int) -> float:
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _json(run_cli: RunCli, *overrides: str) -> Any:
    process = run_cli("report", "report.format=json", *overrides)
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)


def test_tables_match_the_plain_report_with_wilson_intervals_and_mcnemar(
    run_cli: RunCli, storage_overrides: list[str]
) -> None:
    run = run_cli("run", "run.progress=off", *SUITE, *storage_overrides)
    assert run.returncode == 0, run.stderr
    plain = _json(run_cli, *SUITE, *storage_overrides, "report.by=[prompt_type,tool_success_rate]")["rows"]
    counts = {(r["base_model"], r["prompt_type"], r["tool_success_rate"]): r for r in plain}
    for row in plain:
        assert row["total"] == row["success"] + row["partial"] + row["failure"] == 6
    tables = {t["table"]: t for t in _json(run_cli, *SUITE, *storage_overrides,
                                           "report.tables=[5.1,tool_reliability,5.5]")}  # fmt: skip
    assert list(tables) == ["5.1", "5.4", "5.4 paired", "5.5", "5.5 paired"]

    def check(rate: dict[str, Any], expected: dict[str, Any], outcomes: tuple[str, ...]) -> None:
        successes = sum(expected[o] for o in outcomes)
        assert (rate["successes"], rate["trials"]) == (successes, expected["total"])
        low, high = wilson(successes, expected["total"])
        assert (rate["ci_low"], rate["ci_high"]) == (pytest.approx(low), pytest.approx(high))

    assert [r["model"] for r in tables["5.1"]["rows"]] == ["Sim-Agent", "Sim-Weak"]
    for row in tables["5.1"]["rows"]:
        expected = counts[(row["model"], "optimal", 0.8)]
        check(row["overall success"], expected, ("success", "partial"))
        check(row["full success"], expected, ("success",))
        check(row["failure"], expected, ("failure",))
        assert (row["effective units"], row["timeouts excluded"]) == (6, 0)
    assert sorted((r["model"], r["tool_success_rate"]) for r in tables["5.4"]["rows"]) == [
        ("Sim-Agent", 0.6), ("Sim-Agent", 0.8), ("Sim-Weak", 0.6), ("Sim-Weak", 0.8),
    ]  # fmt: skip
    for row in tables["5.4"]["rows"]:
        check(row["overall success"], counts[(row["model"], "optimal", row["tool_success_rate"])],
              ("success", "partial"))  # fmt: skip
    for row in tables["5.5"]["rows"]:
        check(row["partial success"], counts[(row["model"], row["prompt_type"], 0.8)], ("partial",))
    for key, a, b in (("5.4 paired", 0.8, 0.6), ("5.5 paired", "optimal", "cot")):
        pairs = tables[key]["rows"]
        assert [(p["model"], p["a"], p["b"], p["pairs"]) for p in pairs] == [
            ("Sim-Agent", a, b, 6), ("Sim-Weak", a, b, 6),
        ]  # fmt: skip
        for pair in pairs:
            assert pair["p"] == pytest.approx(mcnemar(pair["only a"], pair["only b"]))
            assert pair["a success"] - pair["only a"] == pair["b success"] - pair["only b"], "concordant successes"


def test_csv_carries_each_rates_parts_and_every_format_the_scope_line(run_cli: RunCli) -> None:
    run = run_cli("run", "run.progress=off", *SUITE)
    assert run.returncode == 0, run.stderr
    tables = {t["table"]: t for t in _json(run_cli, *SUITE, "report.tables=[5.1]")}
    scope = tables["5.1"]["scope"]
    assert scope.startswith("scope: ") and "workflow" in scope
    process = run_cli("report", "report.format=csv", *SUITE, "report.tables=[5.1]")
    assert process.returncode == 0, process.stderr
    rows = list(csv.DictReader(io.StringIO(process.stdout)))
    assert [row["model"] for row in rows] == ["Sim-Agent", "Sim-Weak"]
    for row, expected in zip(rows, tables["5.1"]["rows"], strict=True):
        for column in ("overall success", "full success", "partial success", "failure"):
            rate = expected[column]
            assert float(row[column]) == pytest.approx(rate["rate"])
            parts = (int(row[f"{column} successes"]), int(row[f"{column} trials"]))
            assert parts == (rate["successes"], rate["trials"])
            assert float(row[f"{column} ci_low"]) == pytest.approx(rate["ci_low"])
            assert float(row[f"{column} ci_high"]) == pytest.approx(rate["ci_high"])
    markdown = run_cli("report", "report.format=markdown", *SUITE, "report.tables=[5.1]")
    assert markdown.stdout.splitlines()[0] == scope
    table = run_cli("report", *SUITE, "report.tables=[5.1]")
    assert " ".join(scope.split()) in " ".join(table.stdout.split())


def test_unknown_tables_and_other_suites_are_refused_in_one_line(run_cli: RunCli) -> None:
    unknown = run_cli("report", *SUITE, "report.tables=[5.9]")
    assert unknown.returncode == 2
    assert stderr_lines(unknown) == [
        "error: report.tables: '5.9' is not a research table; valid choices: 5.1 (baseline), 5.2 (scale), "
        "5.3 (flawed), 5.4 (tool_reliability), 5.5 (prompt_sensitivity)"
    ]
    jsonl = run_cli("report", "report.tables=[5.1]")
    assert jsonl.returncode == 2
    assert stderr_lines(jsonl)[0].startswith("error: report.tables: the research tables read factor 'prompt_type'")


def test_the_terminal_tables_show_every_cell_whole_however_wide_the_table(run_cli: RunCli) -> None:
    """Table 5.3 of the demo experiment needs about 230 columns. Fitted to the console's width (200 when piped, the
    terminal's otherwise), rich once cut the model column and the intervals short ('Sim-Ag…', '64.0–94.…'); the
    tables now keep their natural width, as the overview table does."""
    demo = ["experiment=workflow_demo", "report.tables=[flawed]"]
    assert run_cli("run", "run.progress=off", "experiment=workflow_demo").returncode == 0
    shown = run_cli("report", *demo)
    assert shown.returncode == 0, shown.stderr
    assert "…" not in shown.stdout
    rates = [
        f"{100 * cell['rate']:.1f}% [{100 * cell['ci_low']:.1f}–{100 * cell['ci_high']:.1f}]"
        for table in _json(run_cli, *demo)
        for row in table["rows"]
        for cell in row.values()
        if isinstance(cell, dict) and "ci_low" in cell
    ]
    assert rates and all(rate in shown.stdout for rate in rates)
    assert max(len(line) for line in shown.stdout.splitlines()) > 200
