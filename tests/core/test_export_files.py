"""Export files are written whole or not at all, into a directory that must exist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetbench.errors import UserError
from fleetbench.report.exports.files import output_dir, staged, write_text


def test_a_failed_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "units.parquet"
    with pytest.raises(RuntimeError), staged(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the export failed midway")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rewrite_keeps_the_previous_file(tmp_path: Path) -> None:
    target = write_text(tmp_path / "report.csv", "old\n")
    with pytest.raises(RuntimeError), staged(target) as temporary:
        temporary.write_text("new, half")
        raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]


def test_a_written_file_gets_the_permissions_of_any_new_file(tmp_path: Path) -> None:
    current = os.umask(0o022)
    try:
        target = write_text(tmp_path / "report.md", "| a |\n")
    finally:
        os.umask(current)
    assert target.stat().st_mode & 0o777 == 0o644


def test_the_output_directory_must_exist(tmp_path: Path) -> None:
    assert output_dir(str(tmp_path), "export.output") == tmp_path
    with pytest.raises(UserError, match=r"export.output: '.*missing' does not exist; create it first"):
        output_dir(str(tmp_path / "missing"), "export.output")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is not a directory"):
        output_dir(str(tmp_path / "file"), "export.output")
