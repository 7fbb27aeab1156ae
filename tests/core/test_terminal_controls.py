"""Stored text (dataset prompts and categories, models' replies) never reaches a terminal as raw control sequences:
`fleetbench show` and the markdown / csv report on a terminal show them escaped; piped, a report stays as stored."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from fleetbench.terminal import for_terminal
from tests.conftest import CLI, RunCli, cli_env

ESCAPES = "\x1b[31mRED\x1b[0m\x1b]52;c;ZXZpbA==\x07"
"""Red text, then OSC 52: writes 'evil' to the clipboard of a terminal that allows it."""
CATEGORY = f"ar{ESCAPES}"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain\ttext\nsecond line", "plain\ttext\nsecond line"),
        ("a\r\nb", "a\nb"),
        (f"x{ESCAPES}", "x\\x1b[31mRED\\x1b[0m\\x1b]52;c;ZXZpbA==\\x07"),
        ("left\u202eright\rback", "left\\u202eright\\rback"),
    ],
)
def test_for_terminal_keeps_lines_and_tabs_and_escapes_every_other_control(text: str, shown: str) -> None:
    assert for_terminal(text) == shown


@pytest.fixture
def dataset(run_cli: RunCli, tmp_path: Path) -> str:
    """A stored run of a dataset whose category and prompt carry terminal controls; the `suite.dataset` override."""
    path = tmp_path / "controls.jsonl"
    rows = [
        {"category": CATEGORY, "id": f"c{i}", "prompt": f"What is 1+1?{ESCAPES}", "reference": "2", "scorer": "exact"}
        for i in range(2)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    override = f"suite.dataset={path}"
    stored = run_cli("run", override, "run.instances=2", "run.progress=off")
    assert stored.returncode == 0, stored.stderr
    return override


def test_show_prints_a_transcript_with_its_controls_escaped(run_cli: RunCli, dataset: str) -> None:
    listed = run_cli("show", "units", dataset)
    assert listed.returncode == 0, listed.stderr
    key = next(word for word in listed.stdout.split() if len(word) >= 12 and all(c in "0123456789abcdef" for c in word))
    shown = run_cli("show", key, dataset)
    assert shown.returncode == 0, shown.stderr
    assert "What is 1+1?\\x1b[31mRED" in shown.stdout
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout


def _on_a_terminal(cwd: Path, *args: str) -> str:
    """What `fleetbench` writes to its stdout when that is a terminal (a pseudo-terminal here)."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([*CLI, *args], cwd=cwd, env=cli_env(), stdout=terminal, stderr=subprocess.PIPE)
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    finally:
        os.close(controller)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("fmt", ["markdown", "csv"])
def test_a_report_on_a_terminal_escapes_controls_and_piped_keeps_them(
    run_cli: RunCli, dataset: str, tmp_path: Path, fmt: str
) -> None:
    args = ("report", dataset, "run.instances=2", "report.by=[category]", f"report.format={fmt}")
    shown = _on_a_terminal(tmp_path, *args)
    assert "ar\\x1b[31mRED\\x1b[0m\\x1b]52;c;ZXZpbA==\\x07" in shown
    assert "\x1b" not in shown and "\x07" not in shown
    piped = run_cli(*args)
    assert piped.returncode == 0, piped.stderr
    assert CATEGORY in piped.stdout, "piped, the report carries the category as stored"
