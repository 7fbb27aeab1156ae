"""Export files are written whole or not at all, into a directory that must exist."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
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
    with pytest.raises(UserError, match=r"is not a directory; give the directory the files go into$"):
        output_dir(str(tmp_path / "file"), "export.output")


def test_a_killed_exports_leftovers_are_removed_by_the_next_export_into_the_directory(tmp_path: Path) -> None:
    """Whatever file they were for: the Inspect logs' names carry their moment, so no later export writes them."""
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid names no process now
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]
    other = hashlib.sha256(f"{socket.gethostname()}-{dead.pid}.lan".encode()).hexdigest()[:12]
    stale = tmp_path / f".report.csv.{host}-{dead.pid}.abc123.partial"
    running = tmp_path / f".report.csv.{host}-{os.getpid()}.def456.partial"  # a live export of the same file
    elsewhere = tmp_path / f".report.csv.{other}-{dead.pid}.ghi789.partial"  # another machine's: maybe alive
    # A host whose name extends this one's with a hyphen: the digest keeps it apart from this host's processes.
    extended = tmp_path / f".report.csv.{socket.gethostname()}-{dead.pid}.lan-555.mno345.partial"
    other_file = tmp_path / f".2026-11-26T21-00-00_part2.json.{host}-{dead.pid}.jkl012.partial"  # an Inspect log's
    for leftover in (stale, running, elsewhere, extended, other_file):
        leftover.write_text("half")
    write_text(tmp_path / "report.csv", "a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["report.csv", running.name, elsewhere.name, extended.name]
    )


def test_a_symlink_keeps_pointing_at_the_file_it_names_which_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    write_text(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink() and os.readlink(tmp_path / "link.txt") == "real.txt"
    assert (tmp_path / "real.txt").read_text() == "new"


def test_a_fifo_or_a_device_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    # Renamed onto, /dev/null would become a regular file for the whole machine (as root).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (fifo, Path("/dev/null"), tmp_path):
        with pytest.raises(OSError, match="not a regular file"):
            write_text(target, "text")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(Path("/dev/null").stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"], "no partial file left behind"
