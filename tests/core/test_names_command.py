"""`fleetbench names`: every spelling given is resolved, unknown ones are marked with the closest known spellings."""

from __future__ import annotations

import subprocess

from tests.conftest import RunCli, stderr_lines


def _rows(process: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """The table's rows as {spelling: (base model, how)}."""
    rows: dict[str, tuple[str, str]] = {}
    for line in process.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if line.startswith("│") and len(cells) == 3:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_every_spelling_is_resolved_and_unknown_ones_are_marked_with_the_closest_names(run_cli: RunCli) -> None:
    process = run_cli("names", "Sim-Agent", "nosuchmodel", "sim", "Sim-Agnet", "deepseek-v3-0324-2")
    assert process.returncode == 1, process.stderr
    rows = _rows(process)
    assert list(rows) == ["Sim-Agent", "nosuchmodel", "sim", "Sim-Agnet", "deepseek-v3-0324-2"]
    assert rows["Sim-Agent"] == ("Sim-Agent", "base name")
    assert rows["sim"] == ("Sim-Agent", "alias")
    assert rows["deepseek-v3-0324-2"][0] == "DeepSeek-V3-0324"
    assert rows["nosuchmodel"] == ("?", "unknown; no close known spelling")
    base, how = rows["Sim-Agnet"]
    assert base == "?" and how.startswith("unknown; closest: Sim-Agent")
    assert stderr_lines(process) == ["error: names: 2 of 5 spellings are unknown: 'nosuchmodel', 'Sim-Agnet'"]


def test_closest_names_are_found_ignoring_case(run_cli: RunCli) -> None:
    rows = _rows(run_cli("names", "DEEPSEEK-V3-0325", "Qwen2.5-72B-Instruc"))
    assert rows["DEEPSEEK-V3-0325"][1].startswith("unknown; closest: DeepSeek-V3-0324")
    assert rows["Qwen2.5-72B-Instruc"][1].startswith("unknown; closest: qwen2.5-72b-instruct")


def test_all_known_spellings_exit_zero(run_cli: RunCli) -> None:
    process = run_cli("names", "Sim-Agent-3", "SIM", "llama3.3")
    assert process.returncode == 0, process.stderr
    assert {row[0] for row in _rows(process).values()} == {"Sim-Agent", "Llama-3.3-70B-Instruct"}
    assert process.stderr == ""


def test_passthrough_keeps_an_unknown_spelling_marked_and_exits_zero(run_cli: RunCli) -> None:
    process = run_cli("names", "Sim-Agnet", "naming.unknown=passthrough")
    assert process.returncode == 0, process.stderr
    base, how = _rows(process)["Sim-Agnet"]
    assert base == "Sim-Agnet"
    assert how.startswith("passthrough (not in the catalog; closest: Sim-Agent")
