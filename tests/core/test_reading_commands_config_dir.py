"""`-cd DIR` / `--config-dir DIR` works for every command that composes the configuration, as it does for `run`: a
catalog of one's own (`models=mine` from `DIR/models/mine.yaml`) is reported, exported, shown and watched the way it
ran. Any other flag is refused in one line instead of being dropped unseen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbench.config.compose import preset_without_header
from tests.conftest import RunCli, stderr_lines

MINE = """\
sim_mine:
  name: Sim-Mine
  provider: simulated
  params: {profile: strong}
  deployments:
    - {name: Sim-Mine}
    - {name: Sim-Mine-Blue}
"""


@pytest.fixture
def own_catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "myconf" / "models"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(MINE)
    return tmp_path / "myconf"


def test_reading_commands_take_the_config_dir_that_run_took(run_cli: RunCli, own_catalog: Path) -> None:
    plan = ["models=mine", "run.models=[Sim-Mine]", "run.instances=2"]
    ran = run_cli("run", "-cd", "myconf", *plan, "run.progress=off")
    assert ran.returncode == 0, ran.stderr
    report = run_cli("report", "-cd", "myconf", *plan, "report.format=json")
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["rows"]
    assert [(row["base_model"], row["total"]) for row in rows] == [("Sim-Mine", 10)]
    names = run_cli("names", f"--config-dir={own_catalog}", *plan, "sim-mine-blue")
    assert names.returncode == 0 and "case variant of deployment" in names.stdout, names.stderr
    assert "│ Sim-Mine   │" in names.stdout
    status = run_cli("status", "--config-dir", "myconf", *plan)
    assert status.returncode == 0 and "Sim-Mine" in status.stdout, status.stderr
    without = run_cli("report", *plan)
    assert without.returncode == 2 and "models: no config 'mine'" in without.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["names", "--bogus"],
            "error: --bogus: not an option of this command; its only option is -cd/--config-dir DIR",
        ),
        (["report", "-cd"], "error: -cd: needs a directory, e.g. -cd myconf"),
        (["plugins", "extra"], "error: plugins: takes no arguments, got 'extra'"),
    ],
)
def test_a_flag_a_command_does_not_take_is_refused_in_one_line(run_cli: RunCli, args: list[str], message: str) -> None:
    process = run_cli(*args)
    assert process.returncode == 2
    assert stderr_lines(process) == [message]


@pytest.mark.parametrize("command", ["run", "report", "status"])
@pytest.mark.parametrize("spelling", ["-cd", "--config-dir="])
def test_a_config_dir_that_is_not_a_directory_is_one_line_and_writes_nothing(
    run_cli: RunCli, tmp_path: Path, command: str, spelling: str
) -> None:
    """Hydra warned, printed two lines more and went on without it (or failed having created the database)."""
    (tmp_path / "passwd").write_text("a file, and a name the secret filter once took for a key\n")
    for folder, what in ((tmp_path / "missing", "does not exist"), (tmp_path / "passwd", "is not a directory")):
        args = [spelling + str(folder)] if spelling.endswith("=") else [spelling, str(folder)]
        refused = run_cli(command, *args, "run.instances=1")
        assert refused.returncode == 2, refused.stderr
        [line] = stderr_lines(refused)
        assert line.startswith("error: ") and f"{folder} {what}; give the directory that holds your config" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"], "no database, no outputs/"


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_config_file_that_is_not_yaml_or_not_utf8_is_one_line_naming_it(
    run_cli: RunCli, tmp_path: Path, command: str
) -> None:
    (tmp_path / "conf" / "models").mkdir(parents=True)
    (tmp_path / "conf" / "experiment").mkdir()
    (tmp_path / "conf" / "models" / "bad.yaml").write_text("foo: [unclosed\n  bar: : :\n")
    (tmp_path / "conf" / "experiment" / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "conf" / "models" / "latin.yaml").write_bytes("x: 1\nname: caf\xe9\n".encode("latin-1"))
    for choice, expected in (
        ("models=bad", f"error: {tmp_path / 'conf' / 'models' / 'bad.yaml'}, line 2: not valid YAML (expected ','"),
        ("experiment=binary", f"error: {tmp_path / 'conf' / 'experiment' / 'binary.yaml'}: not UTF-8 text ("),
        ("models=latin", f"error: {tmp_path / 'conf' / 'models' / 'latin.yaml'}: not UTF-8 text ("),
    ):
        refused = run_cli(command, "-cd", str(tmp_path / "conf"), choice)
        assert refused.returncode == 2, refused.stderr
        [line] = stderr_lines(refused)
        assert line.startswith(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_preset_without_its_package_header_says_so(run_cli: RunCli, tmp_path: Path, command: str) -> None:
    """Without `# @package _global_` a preset's keys land under `experiment:`, which was refused as "experiment: no
    such key" (an empty file too); a comment-only preset with the header changes nothing and runs."""
    presets = tmp_path / "conf" / "experiment"
    presets.mkdir(parents=True)
    (presets / "empty.yaml").write_text("")
    (presets / "headless.yaml").write_text("run:\n  instances: 1\n")
    (presets / "blank.yaml").write_text("# @package _global_\n")
    (presets / "grouped.yaml").write_text("# @package _group_\nrun:\n  instances: 1\n")
    for preset in ("empty", "headless", "grouped"):
        refused = run_cli(command, "-cd", str(tmp_path / "conf"), f"experiment={preset}")
        assert refused.returncode == 2, refused.stderr
        assert stderr_lines(refused) == [f"error: {preset_without_header(preset)}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]
    if command == "run":
        ran = run_cli("run", "-cd", str(tmp_path / "conf"), "experiment=blank", "run.instances=1", "run.progress=off")
        assert ran.returncode == 0, ran.stderr
    typed = run_cli(command, "+experiment.x=1")
    assert typed.returncode == 2 and stderr_lines(typed)[0].startswith("error: experiment: no such key; valid keys:")


def test_serve_takes_the_config_dir_too(run_cli: RunCli, tmp_path: Path) -> None:
    folder = tmp_path / "served" / "models"
    folder.mkdir(parents=True)
    (folder / "gateway.yaml").write_text(
        "mine_real:\n  name: Mine-Real\n  provider: litellm\n  route: openai\n  deployments:\n"
        '    - {name: Mine-Real, endpoint: "${oc.env:MINE_ENDPOINT}", api_keys: ["${oc.env:MINE_KEY}"]}\n'
    )
    served = run_cli("serve", "-cd", "served", "models=gateway", "--print-env")
    assert served.returncode == 0, served.stderr
    assert "MINE_ENDPOINT=http://127.0.0.1:" in served.stdout and "MINE_KEY=" in served.stdout
