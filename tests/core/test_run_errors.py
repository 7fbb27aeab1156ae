"""Every error of `run` is one line with a non-zero exit and leaves nothing behind; reading commands change no file.

Real CLI subprocesses on real SQLite files and the real PostgreSQL server. Permission cases run the CLI as an
unprivileged user (`setpriv` to `nobody` when the tests run as root, since root may write any file).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI, RunCli, cli_env, stderr_lines

pytestmark = pytest.mark.slow
NOBODY = 65534


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with a digest of its content (directories marked as such)."""
    return {str(path.relative_to(root)): _digest(path) for path in sorted(root.rglob("*"))}


def _digest(path: Path) -> str:
    if path.is_dir():
        return "dir"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "not a regular file"


def _one_error_line(process: subprocess.CompletedProcess[str]) -> str:
    lines = stderr_lines(process)
    assert process.returncode not in (0, None), process.stdout + process.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), process.stderr
    assert "Traceback" not in process.stderr
    return lines[0]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A scratch directory an unprivileged user may enter (pytest's tmp_path sits below a root-only directory)."""
    path = Path(tempfile.mkdtemp(prefix="fleetbench-"))
    path.chmod(0o777)
    yield path
    path.chmod(0o777)
    shutil.rmtree(path)


@pytest.fixture
def run_unprivileged() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the CLI as a user that file permissions apply to."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file permissions cannot be exercised")
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

    def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *CLI, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=120
        )

    return _run


def _stored_database(run_cli: RunCli, directory: Path) -> Path:
    process = run_cli("run", "run.instances=1", cwd=directory)
    assert process.returncode == 0, process.stderr
    shutil.rmtree(directory / "outputs")
    return directory / "fleetbench.db"


@pytest.mark.parametrize(
    ("prepare", "url", "expected"),
    [
        pytest.param(
            lambda d: (d / "fleetbench.db").mkdir(),
            "fleetbench.db",
            "fleetbench.db is a directory, not a database file",
            id="db-is-a-dir",
        ),
        pytest.param(
            lambda d: (d / "fleetbench.db").write_bytes(b"not a database, just bytes " * 200),
            "fleetbench.db",
            "fleetbench.db is not a SQLite database",
            id="corrupt-db",
        ),
        pytest.param(lambda d: None, "missing/fleetbench.db", "directory missing does not exist", id="no-such-dir"),
        pytest.param(
            lambda d: os.mkfifo(d / "fleetbench.db"),
            "fleetbench.db",
            "fleetbench.db is not a regular file (a FIFO or a device), not a database file",
            id="db-is-a-fifo",
        ),
    ],
)
def test_a_bad_sqlite_database_is_one_line_and_nothing_is_written(
    run_cli: RunCli, tmp_path: Path, prepare: Callable[[Path], None], url: str, expected: str
) -> None:
    prepare(tmp_path)
    before = _snapshot(tmp_path)
    line = _one_error_line(run_cli("run", "run.instances=1", f"storage.url=sqlite:///{url}"))
    assert expected in line
    assert _snapshot(tmp_path) == before, "no outputs/ directory, no new database file, the bad file unchanged"


def test_a_sweep_refused_by_its_second_storage_creates_no_database_for_the_first(
    run_cli: RunCli, tmp_path: Path
) -> None:
    before = _snapshot(tmp_path)
    urls = "storage.url=sqlite:///first.db,sqlite:///missing/second.db"
    line = _one_error_line(run_cli("run", "-m", urls, "run.instances=1"))
    assert "directory missing does not exist" in line
    assert _snapshot(tmp_path) == before, "no first.db, no multirun/ directory"


def test_a_read_only_database_is_one_line_and_stays_untouched(
    run_cli: RunCli, shared_dir: Path, run_unprivileged: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    database = _stored_database(run_cli, shared_dir)
    database.chmod(0o444)
    before = _snapshot(shared_dir)
    line = _one_error_line(run_unprivileged("run", "run.instances=2", cwd=shared_dir))
    assert "fleetbench.db is read-only" in line
    assert _snapshot(shared_dir) == before
    report = run_unprivileged("report", "report.format=json", cwd=shared_dir)
    assert report.returncode == 0, report.stderr
    assert '"total": 5' in report.stdout
    assert _snapshot(shared_dir) == before, "a reader of a database it may not write leaves no file behind"


def test_an_unwritable_working_directory_is_one_line(
    shared_dir: Path, run_unprivileged: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    shared_dir.chmod(0o555)
    line = _one_error_line(run_unprivileged("run", "run.instances=1", cwd=shared_dir))
    assert "hydra.run.dir" in line and "not a writable directory" in line
    assert list(shared_dir.iterdir()) == []


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["run", "report", "status", "runs", "show"])
def test_a_missing_postgresql_database_is_one_line_naming_where_the_url_comes_from(
    run_cli: RunCli, tmp_path: Path, postgres_url: str, command: str
) -> None:
    """Every command, reading ones included (they once left out where the URL comes from)."""
    missing = postgres_url.rsplit("/", 1)[0] + "/fleetbench_no_such_database"
    line = _one_error_line(run_cli(command, f"storage.url={missing}"))
    assert 'database "fleetbench_no_such_database" does not exist' in line
    assert line.endswith("(set storage.url, or FLEETBENCH_DATABASE_URL with storage=postgres)")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_postgresql_driver_is_one_line(tmp_path: Path) -> None:
    # psycopg shadowed by a package that fails to import, as an install without the `[postgres]` extra does.
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'psycopg'\")\n")
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.run(
        [*CLI, "run", "storage=postgres"],
        cwd=work,
        env=cli_env({"PYTHONPATH": str(tmp_path / "shadow")}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "pip install -c constraints.txt -e '.[postgres]'" in _one_error_line(process)
    assert process.returncode == 2
    assert list(work.iterdir()) == []


def test_a_run_that_fails_validation_leaves_no_run_row(run_cli: RunCli, tmp_path: Path) -> None:
    database = _stored_database(run_cli, tmp_path)
    line = _one_error_line(run_cli("run", "run.seed=9223372036854775808"))
    assert "run.seed" in line
    with sqlite3.connect(database) as connection:
        assert connection.execute("select count(*) from runs").fetchone() == (1,)
    assert not (tmp_path / "outputs").exists()


# --- reading commands --------------------------------------------------------------------------------------------


def test_report_on_an_empty_file_says_it_is_not_a_fleetbench_database_and_changes_nothing(
    run_cli: RunCli, tmp_path: Path
) -> None:
    (tmp_path / "fleetbench.db").touch()
    line = _one_error_line(run_cli("report"))
    assert "is not a fleetbench database" in line
    assert (tmp_path / "fleetbench.db").stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleetbench.db"]


def test_report_and_show_never_change_the_database_file(run_cli: RunCli, tmp_path: Path) -> None:
    database = _stored_database(run_cli, tmp_path)
    digest = hashlib.sha256(database.read_bytes()).hexdigest()
    with sqlite3.connect(database) as connection:
        key = connection.execute("select unit_key from units limit 1").fetchone()[0]
    assert run_cli("report").returncode == 0
    assert run_cli("show", key[:12]).returncode == 0
    assert hashlib.sha256(database.read_bytes()).hexdigest() == digest
    assert run_cli("run", "run.instances=1").returncode == 0
    # The next run tidies up SQLite's -wal/-shm files; the writers' lock file stays (README, Claims with leases).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleetbench.db", "fleetbench.db-writers", "outputs"]


def test_report_output_receives_the_table_too(run_cli: RunCli, tmp_path: Path) -> None:
    _stored_database(run_cli, tmp_path)
    process = run_cli("report", "report.output=report.txt")
    assert process.returncode == 0, process.stderr
    assert process.stdout == "wrote report.txt\n", "the report goes to the file; the terminal says where"
    written = (tmp_path / "report.txt").read_text()
    assert "fleetbench report" in written and "Sim-Agent" in written
    assert "\x1b[" not in written, "no terminal colour codes in a file"
    assert run_cli("report", "report.format=csv", "report.output=report.csv").stdout == "wrote report.csv\n"
    assert (tmp_path / "report.csv").read_text().startswith("base_model,")


def test_report_output_in_a_missing_directory_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    _stored_database(run_cli, tmp_path)
    line = _one_error_line(run_cli("report", "report.format=csv", "report.output=no/such/dir/report.csv"))
    assert "report.output" in line and "no/such/dir/report.csv" in line
    assert not (tmp_path / "no").exists()


def test_show_renders_each_unit_with_the_suite_that_stored_it(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("run", "experiment=workflow_demo", "run.instances=1").returncode == 0
    assert run_cli("run", "run.instances=1").returncode == 0
    with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
        keys = dict(connection.execute("select suite, min(unit_key) from units group by suite").fetchall())
    workflow_unit = run_cli("show", keys["workflow"][:12])  # the configured suite is jsonl
    assert workflow_unit.returncode == 0, workflow_unit.stderr
    assert "=== Task " in workflow_unit.stdout and "--- System prompt ---" in workflow_unit.stdout
    jsonl_unit = run_cli("show", keys["jsonl"][:12], "experiment=workflow_demo")  # the configured suite is workflow
    assert jsonl_unit.returncode == 0, jsonl_unit.stderr
    assert "--- user ---" in jsonl_unit.stdout and "--- assistant ---" in jsonl_unit.stdout
    assert "reference: " in jsonl_unit.stdout and ("-> correct" in jsonl_unit.stdout or "-> wrong" in jsonl_unit.stdout)
    assert '"reference"' not in jsonl_unit.stdout, "readable text, not the stored JSON"


def test_an_output_directory_under_a_file_named_through_the_configuration_is_one_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """`hydra.run.dir` may read the application's keys (`${run.seed}`): the check resolves it as the job would."""
    (tmp_path / "afile").write_text("not a directory")
    refused = run_cli("run", "run.instances=1", f"hydra.run.dir={tmp_path / 'afile'}/${{run.seed}}")
    assert refused.returncode == 2
    assert stderr_lines(refused) == [
        f"error: hydra.run.dir: cannot create the output directory {tmp_path / 'afile' / '0'}: {tmp_path / 'afile'} "
        "is not a writable directory (run fleetbench from a writable directory or set hydra.run.dir)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.job_logging.handlers.file.filename"])
def test_a_path_under_a_pseudo_filesystem_is_one_line_whatever_the_permission_bits_say(
    run_cli: RunCli, tmp_path: Path, key: str
) -> None:
    """/proc refuses new entries even to root, for whom permission bits allow everything: the check tries for real."""
    refused = run_cli("run", "run.instances=1", f"{key}=/proc/fleetbench-out/x")
    assert refused.returncode == 2
    what = "log file" if "logging" in key else "output directory"
    assert stderr_lines(refused) == [
        f"error: {key}: cannot create the {what} /proc/fleetbench-out/x: /proc is not a writable directory "
        f"({'run fleetbench from a writable directory or set' if what == 'output directory' else 'set'} {key}"
        f"{' to a writable path' if what == 'log file' else ''})"
    ]
    assert list(tmp_path.iterdir()) == [], "nothing written: no database, no outputs/"


@pytest.mark.parametrize("where", ["a directory", "/proc/self/status"])
def test_a_log_file_that_cannot_be_appended_to_is_one_line(run_cli: RunCli, tmp_path: Path, where: str) -> None:
    """A directory; or a file of /proc, which is a file and writable by root's permission bits, yet refuses to be
    opened for appending."""
    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" if where == "a directory" else Path(where)
    refused = run_cli("run", "run.instances=1", f"hydra.job_logging.handlers.file.filename={path}")
    assert refused.returncode == 2
    assert stderr_lines(refused) == [
        f"error: hydra.job_logging.handlers.file.filename: cannot write the log file {path}: it is not "
        "a writable file (set hydra.job_logging.handlers.file.filename to a writable path)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]
    assert list((tmp_path / "logs").iterdir()) == []


@pytest.mark.parametrize(
    ("args", "key", "raw"),
    [
        ([], "hydra.run.dir", "${oc.env:FLEETBENCH_UNSET_DIR}"),
        (["-m", "run.seed=1,2"], "hydra.sweep.dir", "${oc.env:FLEETBENCH_UNSET_DIR}"),
        (["-m", "run.seed=1,2"], "hydra.sweep.dir", "${hydra:runtime.cwd}/${oc.env:FLEETBENCH_UNSET_DIR}"),
        (["-m", "run.seed=1,2", "hydra.sweep.dir=sweeps"], "hydra.sweep.subdir", "${oc.env:FLEETBENCH_UNSET_DIR}"),
        ([], "hydra.job.name", "${oc.env:FLEETBENCH_UNSET_DIR}"),
        ([], "hydra.job_logging.handlers.file.filename", "${oc.env:FLEETBENCH_UNSET_DIR}/x.log"),
    ],
)
def test_a_hydra_setting_naming_an_unset_variable_is_one_line(
    run_cli: RunCli, tmp_path: Path, args: list[str], key: str, raw: str
) -> None:
    """Hydra would resolve these inside the job, after creating its directories, and fail with a traceback."""
    refused = run_cli("run", *args, "run.instances=1", f"{key}={raw}")
    assert refused.returncode == 2
    assert stderr_lines(refused) == [
        f"error: {key}: cannot resolve '{raw}': KeyError raised while resolving interpolation: \"Environment "
        "variable 'FLEETBENCH_UNSET_DIR' not found\""
    ]
    assert refused.stdout == ""
    assert list(tmp_path.iterdir()) == [], "nothing written: no outputs/, no database"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["report", "report.by=${run.nothing_here}"],
            "error: report.by.0: Interpolation key 'run.nothing_here' not found",
        ),
        (["report", "report.by=[${oc.env:FLEETBENCH_UNSET_VARIABLE}]"], "error: report.by.0: "),
        (["report", "report.by=base_model"], "error: report.by: 'base_model' is not needed"),
    ],
)
def test_a_value_that_fails_when_read_is_one_line(run_cli: RunCli, command: list[str], expected: str) -> None:
    refused = run_cli(*command)
    assert refused.returncode == 2
    lines = stderr_lines(refused)
    assert len(lines) == 1 and lines[0].startswith(expected), refused.stderr


def test_an_interpolation_reads_the_whole_configuration(run_cli: RunCli, tmp_path: Path) -> None:
    """`${run.label}` inside `run.models` is read from the composed configuration, not from the `run` section alone."""
    ran = run_cli("run", "run.models=[${run.label}]", "run.label=Sim-Weak", "run.instances=1", "run.progress=off")
    assert ran.returncode == 0, ran.stderr
    assert "Sim-Weak" in ran.stdout


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--info", "--cfg", "job"], "error: run: -c/--cfg and --info cannot be combined; give one of -r/--run, "),
        (["-c", "job", "-r"], "error: run: -r/--run and -c/--cfg cannot be combined"),
        (["--run", "--multirun"], "error: run: -r/--run and -m/--multirun cannot be combined"),
        (["--shell-completion", "install=bash"], "error: run: --shell-completion is not supported"),
        (["--experimental-rerun", "config.pickle"], "error: run: --experimental-rerun is not supported: runs save no"),
        (["--config-path", "/nowhere"], "error: run: --config-path/-cp is not supported: "),
        (["--bogus-flag", "run.instances=2"], "error: run: --bogus-flag: not an option; Hydra's options: -m/"),
    ],
)
def test_hydra_flags_that_cannot_be_honoured_are_one_line(
    run_cli: RunCli, tmp_path: Path, flags: list[str], expected: str
) -> None:
    """Each was a Hydra traceback (or, for -cp, three lines about a directory) after the configuration composed."""
    process = run_cli("run", *flags, cwd=tmp_path)
    assert _one_error_line(process).startswith(expected)
    assert process.returncode == 2 and list(tmp_path.iterdir()) == [], "nothing written"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("suite.dataset={fifo}", "suite.dataset: cannot read '{fifo}': not a regular file"),
        ("suite.task_file={fifo}", "task file cannot be read: {fifo} (not a regular file)"),
        ("suite.tool_registry={fifo}", "tool registry file cannot be read: {fifo} (not a regular file)"),
    ],
)
def test_a_data_file_that_is_a_fifo_is_one_line_not_a_hang(
    run_cli: RunCli, tmp_path: Path, override: str, expected: str
) -> None:
    """A FIFO named as a data file: opened as a file, it waited for a writer for ever, deaf to Ctrl-C and SIGTERM
    while the run composed its configuration (an attacker's finding). Now a one-line error, at once (the timeout
    only ends a hang)."""
    fifo = tmp_path / "data"
    os.mkfifo(fifo)
    suite = [] if override.startswith("suite.dataset") else ["suite=workflow"]
    process = run_cli("run", *suite, override.format(fifo=fifo), timeout=60)
    assert expected.format(fifo=fifo) in _one_error_line(process)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--help"],
        ["run", "run.instances=2", "run.progress=off"],
        ["run", "-m", "run.seed=1,2", "run.instances=2", "run.progress=off"],
        ["plugins"],
    ],
    ids=" ".join,
)
def test_output_piped_into_a_reader_that_leaves_is_no_traceback(tmp_path: Path, command: list[str]) -> None:
    """`fleetbench run --help | head -2`: the reader leaves before the output is written, and the write's
    BrokenPipeError ended the command with a traceback (a new user's finding; Hydra's "Error executing job" after a
    run, whose units stay stored). Now no traceback and exit 141, as a pipe's writer that SIGPIPE ends gets, also
    where rich writes (it exited 1 on its own), and in a sweep, whose launch lines logging wrote with a traceback
    each. The pipe's read end is closed before the command has imported its CLI."""
    process = subprocess.Popen([*CLI, *command], cwd=tmp_path, env=cli_env(None), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141, stderr
    assert "Traceback" not in stderr and "Error executing job" not in stderr, stderr
    if "run.instances=2" in command:  # every run went on to the end: a sweep's launch lines met the gone reader first
        with sqlite3.connect(tmp_path / "fleetbench.db") as connection:
            statuses = connection.execute("select status from runs").fetchall()
        assert statuses == [("completed",)] * (2 if "-m" in command else 1)
