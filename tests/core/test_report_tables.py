"""The report tables (`fleetbench.report.tables`), through their public functions: one row per base model (× `by`
factors), its deployments' shares beneath it, headline metrics, and the four output formats."""

from __future__ import annotations

import csv
import io
import json
import math
from decimal import Decimal
from typing import Any

from rich.console import Console

from fleetbench.interfaces import NoOptions
from fleetbench.report.tables import HEADLINE_METRICS, Report, build_report, render
from fleetbench.testing.fakes import ExactNaming
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.testing.runs import fake_models
from fleetbench.testing.units import make_unit
from fleetbench.types import (
    CallRecord,
    CallStatus,
    Catalog,
    Cell,
    Episode,
    MetricSpec,
    Outcome,
    ReportFilter,
    RunRecord,
    UnitResult,
)

CORRECT = MetricSpec("correct", "1 if right", "mean")
TOKENS = MetricSpec("tokens", "sent", "sum")


def _row(base: str, success: int, failure: int = 0, infra: int = 0, **extra: Any) -> dict[str, Any]:
    total = success + failure
    return {"base_model": base, "total": total, "success": success, "partial": 0, "failure": failure,
            "infra_error": infra, "mean_duration_s": 1.5, "mean_turns": 1.0, **extra}  # fmt: skip


SHARES = [
    {"base_model": "Alpha", "deployment": "Alpha", "units": 3, "calls": 4},
    {"base_model": "Alpha", "deployment": "Alpha-2", "units": 1, "calls": 4},
    {"base_model": "Beta", "deployment": "Beta", "units": 0, "calls": 0},
]


def _markdown(report: Report) -> list[str]:
    text = render(report, "markdown", Console(file=io.StringIO()))
    assert text is not None and text.endswith("\n")
    return text.splitlines()


def test_markdown_has_one_row_per_model_with_its_deployment_shares_beneath() -> None:
    rows = [_row("Alpha", 3, 1, infra=2, correct=0.75, tokens=120.0), _row("Beta", 0, 0, correct=None, tokens=None)]
    lines = _markdown(Report((), (CORRECT, TOKENS), rows, SHARES))
    assert lines == [
        "| model | units | calls | success | partial | failure | not done | full % | correct |",
        "|---|---|---|---|---|---|---|---|---|",
        "| Alpha | 4 | 8 | 3 | 0 | 1 | 2 | 75.0% | 0.750 |",
        "|   └ Alpha | 3 (75.0%) | 4 (50.0%) |  |  |  |  |  |  |",
        "|   └ Alpha-2 | 1 (25.0%) | 4 (50.0%) |  |  |  |  |  |  |",
        "| Beta | 0 | 0 | 0 | 0 | 0 | 0 | - | - |",
        "|   └ Beta | 0 (-) | 0 (-) |  |  |  |  |  |  |",
    ]


def test_with_by_factors_calls_are_left_to_the_shares_which_follow_the_models_last_row() -> None:
    rows = [
        _row("Alpha", 1, 1, level="low", rate=0.8),
        _row("Alpha", 2, 0, level="high", rate=None),
        _row("Beta", 0, 1, level="low", rate=1),
    ]
    lines = _markdown(Report(("level", "rate"), (), rows, SHARES))
    assert lines[0] == "| model | level | rate | units | calls | success | partial | failure | not done | full % |"
    assert lines[2:] == [
        "| Alpha | low | 0.800 | 2 |  | 1 | 0 | 1 | 0 | 50.0% |",
        "| Alpha | high | - | 2 |  | 2 | 0 | 0 | 0 | 100.0% |",
        "|   └ Alpha |  |  | 3 (75.0%) | 4 (50.0%) |  |  |  |  |  |",
        "|   └ Alpha-2 |  |  | 1 (25.0%) | 4 (50.0%) |  |  |  |  |  |",
        "| Beta | low | 1 | 1 |  | 0 | 0 | 1 | 0 | 0.0% |",
        "|   └ Beta |  |  | 0 (-) | 0 (-) |  |  |  |  |  |",
    ]


def test_with_by_factors_each_row_shows_its_groups_calls_when_the_storage_counts_them() -> None:
    rows = [
        _row("Alpha", 1, 1, level="low", rate=0.8),
        _row("Alpha", 2, 0, level="high", rate=None),
        _row("Beta", 0, 1, level="low", rate=1),
    ]
    counted = [
        {"base_model": "Alpha", "level": "low", "rate": 0.8, "calls": 5},
        {"base_model": "Alpha", "level": "high", "rate": None, "calls": 3},
    ]
    lines = _markdown(Report(("level", "rate"), (), rows, SHARES, group_calls=counted))
    assert [line.split(" | ")[4] for line in lines[2:]] == ["5", "3", "4 (50.0%)", "4 (50.0%)", "0", "0 (-)"], (
        "each row its group's calls (0 for a group that sent none), the deployment lines as before"
    )


def test_shares_follow_the_last_row_of_the_last_model_too() -> None:
    rows = [_row("Alpha", 1, level="low"), _row("Beta", 1, level="low"), _row("Beta", 0, 1, level="high")]
    lines = _markdown(Report(("level",), (), rows, SHARES))
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| Alpha",
        "|   └ Alpha",
        "|   └ Alpha-2",
        "| Beta",
        "| Beta",
        "|   └ Beta",
    ]


def test_only_the_first_mean_metrics_are_headlines() -> None:
    metrics = tuple(MetricSpec(f"m{i}", "", "sum" if i == 1 else "mean") for i in range(7))
    report = Report((), metrics, [_row("Alpha", 1, **{m.name: float(i) for i, m in enumerate(metrics)})], [])
    head, _, row = _markdown(report)
    shown = ["m0", "m2", "m3", "m4"]
    assert HEADLINE_METRICS == 4
    assert head.endswith("| full % | " + " | ".join(shown) + " |")
    assert row.endswith("| 0.000 | 2.000 | 3.000 | 4.000 |")


def test_markdown_escapes_pipes_in_cells() -> None:
    lines = _markdown(Report(("flaw",), (), [_row("A|B", 1, flaw="x|y")], []))
    assert lines[2] == "| A\\|B | x\\|y | 1 |  | 1 | 0 | 0 | 0 | 100.0% |"


def test_csv_carries_every_column_of_every_row() -> None:
    rows = [_row("Alpha", 3, 1, correct=0.75, tokens=120.0), _row("Beta", 1, correct=1.0, tokens=3.0)]
    text = render(Report((), (CORRECT, TOKENS), rows, SHARES), "csv", Console(file=io.StringIO()))
    assert text is not None
    parsed = list(csv.DictReader(io.StringIO(text)))
    calls = {"Alpha": "8", "Beta": "0"}  # each model's calls on its deployment lines (Beta has none)
    expected = [{k: str(v) for k, v in row.items()} for row in rows]
    assert [dict(r) for r in parsed] == [{**r, "calls": calls[r["base_model"]]} for r in expected]
    assert list(parsed[0])[:3] == ["base_model", "total", "calls"], "calls follow the units they were sent for"
    empty = render(Report((), (), [], []), "csv", Console(file=io.StringIO()))
    assert empty == "base_model\r\n"
    one = render(Report((), (), [{"base_model": "Alpha", "total": 1}], []), "csv", Console(file=io.StringIO()))
    assert one == "base_model,total,calls\r\nAlpha,1,0\r\n"
    grouped = render(
        Report(("level",), (), [_row("Alpha", 1, level="low")], SHARES), "csv", Console(file=io.StringIO())
    )
    assert grouped is not None and next(csv.DictReader(io.StringIO(grouped)))["calls"] == "", "not counted: blank"


def test_json_carries_rows_and_shares() -> None:
    rows = [_row("Alpha", 3, 1, correct=0.75)]
    text = render(Report((), (CORRECT,), rows, SHARES), "json", Console(file=io.StringIO()))
    assert text is not None and text.endswith("}\n")
    with_calls = [{**row, "calls": 8} for row in rows]
    assert json.loads(text) == {"scope": "", "rows": with_calls, "deployment_shares": SHARES}


def test_json_is_indented_and_writes_database_numbers_as_text() -> None:
    rows = [{"base_model": "Alpha", "correct": Decimal("0.5")}]  # PostgreSQL's numeric aggregates come as Decimal
    text = render(Report((), (), rows, []), "json", Console(file=io.StringIO()))
    assert text == (
        '{\n  "scope": "",\n  "rows": [\n    {\n      "base_model": "Alpha",\n      "correct": "0.5"\n    }\n  ],\n'
        '  "deployment_shares": []\n}\n'
    )


def test_json_is_strict_writing_sums_beyond_the_largest_float_as_null() -> None:
    """A metric summed past the largest float reports inf, which Python's json wrote as the bare token `Infinity`
    that strict parsers (browsers, jq) reject."""
    rows = [_row("Alpha", 3, 1, correct=math.inf), _row("Beta", 3, 1, correct=math.nan)]
    text = render(Report((), (CORRECT,), rows, SHARES), "json", Console(file=io.StringIO()))
    assert text is not None

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    parsed = json.loads(text, parse_constant=refuse)
    assert [row["correct"] for row in parsed["rows"]] == [None, None]


def test_the_table_is_printed_not_returned() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    assert render(Report((), (CORRECT,), [_row("Alpha", 3, 1, correct=0.75)], SHARES), "table", console) is None
    lines = out.getvalue().splitlines()
    assert lines[0].strip() == "fleetbench report"
    header = [cell.strip() for cell in lines[2].split("┃")[1:-1]]
    assert header == ["model", "units", "calls", "success", "partial", "failure", "not done", "full %", "correct"]
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    assert cells == [
        ["Alpha", "4", "8", "3", "0", "1", "0", "75.0%", "0.750"],
        ["└ Alpha", "3 (75.0%)", "4 (50.0%)", "", "", "", "", "", ""],
        ["└ Alpha-2", "1 (25.0%)", "4 (50.0%)", "", "", "", "", "", ""],
    ]


def test_each_column_is_as_wide_as_its_widest_text_and_tabulate_keeps_its_own_default() -> None:
    import tabulate

    default = tabulate.MIN_PADDING
    out = io.StringIO()
    render(Report((), (CORRECT,), [_row("Alpha", 3, 1, correct=0.75)], SHARES), "table", Console(file=out, width=200))
    header = out.getvalue().splitlines()[2]
    assert header.split("┃")[4] == " success "  # one space of the box each side, no padding of tabulate's own
    assert tabulate.MIN_PADDING == default == 2  # set for our table only: other users of tabulate are untouched
    assert tabulate.tabulate([["a"]], ["x"], tablefmt="grid").splitlines()[1] == "| x   |"  # padded by default


def test_on_a_narrow_terminal_each_row_stays_on_one_line() -> None:
    out = io.StringIO()
    console = Console(file=out, width=40, color_system=None)
    render(Report((), (), [_row("A-model-with-a-very-long-canonical-name", 1), _row("B", 2)], []), "table", console)
    rows = [line for line in out.getvalue().splitlines() if line.startswith("│")]
    assert len(rows) == 2 and rows[0].startswith("│ A-model-with") and rows[1].startswith("│ B ")


def test_build_report_aggregates_by_base_model_and_factors_with_shares() -> None:
    catalog = Catalog(fake_models(["Alpha", "Beta"]))
    storage = MemoryStorage(naming=ExactNaming(NoOptions(), catalog=catalog))
    storage.begin_run(RunRecord("r", 0.0, "tiny", ("Alpha", "Beta"), {}, "v", "h"))
    results = []
    for i, (model, deployment, level, outcome) in enumerate(
        [("Alpha", "Alpha", "low", Outcome.SUCCESS), ("Alpha", "Alpha-2", "low", Outcome.FAILURE),
         ("Alpha", "Alpha", "high", Outcome.SUCCESS), ("Beta", "Beta", "low", Outcome.INFRA_ERROR)]
    ):  # fmt: skip
        unit = make_unit(f"{i:032x}", Cell("tiny", model, (("level", level),)), i)
        episode = Episode(outcome, {"correct": float(outcome is Outcome.SUCCESS)})
        results.append(UnitResult(unit, "r", deployment, deployment, 0.0, 1.0, episode))
    # Alpha's low units sent 3 requests, its high unit 1; Beta's unit one, and one more to a judge on Alpha-2.
    sent = [(0, "Alpha"), (0, "Alpha"), (1, "Alpha-2"), (2, "Alpha"), (3, "Beta"), (3, "Alpha-2")]
    calls = [CallRecord(results[i].unit.key, "r", d, d, "key0", n, 0.0, 0.1, CallStatus.OK, 1, 1) for n, (i, d) in
             enumerate(sent, 1)]  # fmt: skip
    storage.write(results, calls)
    report = build_report(storage, ReportFilter(), (CORRECT,), ["level"])
    assert [report.calls_of(row) for row in report.rows] == [1, 3, 1], "each row its group's calls, not a judge's"
    assert [(r["base_model"], r["level"], r["total"], r["success"], r["correct"]) for r in report.rows] == [
        ("Alpha", "high", 1, 1, 1.0),
        ("Alpha", "low", 2, 1, 0.5),
        ("Beta", "low", 0, 0, None),
    ]
    assert report.by == ("level",) and report.metrics == (CORRECT,)
    assert [(s["deployment"], s["units"]) for s in report.shares_of("Alpha")] == [("Alpha", 2), ("Alpha-2", 1)]
    assert report.shares_of("Nobody") == []


def test_every_row_keeps_its_box_whatever_the_names_hold() -> None:
    """A newline, a tab, an escape sequence or wide characters in a name neither break a row nor misalign the box;
    leading spaces (the deployment lines' indent) are kept."""
    from wcwidth import wcswidth

    out = io.StringIO()
    rows = [_row("Al\npha🚀", 3, 1, correct=0.75), _row("模型\t\x1b[31m", 1, 1, correct=0.5)]
    shares = [{"base_model": "Al\npha🚀", "deployment": "Al\npha🚀-2", "units": 4, "calls": 4}]
    render(Report((), (CORRECT,), rows, shares), "table", Console(file=out, width=200, color_system=None))
    table = [line for line in out.getvalue().splitlines() if line[:1] in "┏┃┡│└"]
    assert len(table) == 7 and len({wcswidth(line) for line in table}) == 1
    cells = [[cell for cell in line.split("│")[1:-1]] for line in table if line.startswith("│")]
    assert [cell.strip() for cell in cells[0][:1]] == ["Al\\npha🚀"]
    assert cells[1][0].startswith("   └ Al\\npha🚀-2")
    assert cells[2][0].strip() == "模型\\t\\x1b[31m"


def test_the_table_explains_success_rate_only_where_the_suite_reports_it() -> None:
    rate = MetricSpec("success_rate", "full and partial successes", "mean")
    for metrics, explained in (((CORRECT,), False), ((rate, CORRECT), True)):
        console = Console(file=io.StringIO(), width=200)
        render(Report((), metrics, [_row("Alpha", 1, correct=1.0, success_rate=1.0)], SHARES), "table", console)
        caption = console.file.getvalue().splitlines()[-1]
        assert caption.startswith("units = success + partial + failure")
        assert ("success_rate (a suite metric) counts full and partial successes" in caption) is explained


def test_an_output_without_box_characters_gets_the_table_in_ascii() -> None:
    # PYTHONIOENCODING=ascii or a latin-1 terminal: the table once ended the command with a UnicodeEncodeError.
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    render(Report((), (CORRECT,), [_row("Alpha", 3, 1, correct=0.75)], SHARES), "table", Console(file=out, width=200))
    out.flush()
    text = out.buffer.getvalue().decode("ascii")  # type: ignore[attr-defined]
    lines = text.splitlines()
    assert lines[1].startswith("+---") and lines[2].startswith("| model")
    assert any(line.startswith("|   - ") for line in lines), "the deployment lines, marked in ASCII"
    assert len({len(line) for line in lines[1:-2]}) == 1, "every row as wide as the box"


def test_a_line_break_in_a_markdown_cell_keeps_the_row_whole() -> None:
    rows = [_row("Alpha\nBeta|Gamma\r\nDelta", 3, 1, correct=0.75)]
    text = render(Report((), (CORRECT,), rows, []), "markdown", Console(file=io.StringIO()))
    assert text is not None
    [row] = [line for line in text.splitlines() if "Alpha" in line]
    assert row.startswith("| Alpha<br>Beta\\|Gamma<br>Delta |") and row.endswith(" |")
