"""Literal secrets never reach anything a run writes or prints: database, outputs/, multirun/, logs, stdout, stderr.

End-to-end scans run the real CLI in subprocesses (single runs, `-m` sweeps, a run that fails inside its job, a run
refused before it starts) and read back every file and every database row, transcripts decompressed. The in-process
tests pin the two mechanisms: `redact` (what the `runs` table stores) and `hide_secrets` (what Hydra is given).
"""

from __future__ import annotations

import json
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from sqlalchemy import MetaData, create_engine, select

from fleetbench.cli import _sweep_jobs
from fleetbench.config import compose_config, redact
from fleetbench.errors import ConfigError
from tests.conftest import RunCli

KEY_A, KEY_B = "sk-live-DO-NOT-LEAK-4711", "sk-live-DO-NOT-LEAK-0815"
QUERY_KEY = "qk-DO-NOT-LEAK-1234"
DB_PASSWORD = "pw-DO-NOT-LEAK-9999"
SECRETS = (KEY_A, KEY_B, QUERY_KEY, DB_PASSWORD)
KEYS = f"models.sim_agent.deployments.0.api_keys=[{KEY_A},{KEY_B}]"
ENDPOINT = f"models.sim_agent.deployments.1.endpoint='https://gw.example/v1?api-version=2&api-key={QUERY_KEY}'"


def _database_text(url: str) -> Iterator[str]:
    """Every row of every table in the database (as reflected: whatever the storage created) as text, transcripts
    decompressed."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = MetaData()
            tables.reflect(bind=connection)
            for table in tables.sorted_tables:
                for row in connection.execute(select(table)).mappings():
                    values: dict[str, Any] = dict(row)
                    if table.name == "transcripts":
                        values["data"] = zlib.decompress(bytes(values["data"])).decode()
                    yield json.dumps(values, default=str)
    finally:
        engine.dispose()


def _assert_nowhere(process: Any, root: Path, database_url: str) -> None:
    for secret in SECRETS:
        assert secret not in process.stdout, f"{secret} printed on stdout"
        assert secret not in process.stderr, f"{secret} printed on stderr"
        for path in (p for p in root.rglob("*") if p.is_file()):
            assert secret.encode() not in path.read_bytes(), f"{secret} leaked into {path.relative_to(root)}"
        for row in _database_text(database_url):
            assert secret not in row, f"{secret} stored in the database: {row[:200]}"


def _stored_config(database_url: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        config = connection.exec_driver_sql("select config from runs").scalars().first()
    engine.dispose()
    return config if isinstance(config, dict) else json.loads(config)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_run_stores_and_prints_no_literal_secret(run_cli: RunCli, tmp_path: Path) -> None:
    process = run_cli("run", "run.instances=2", KEYS, ENDPOINT)
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "outputs").is_dir()
    url = f"sqlite:///{tmp_path / 'fleetbench.db'}"
    _assert_nowhere(process, tmp_path, url)
    config = _stored_config(url)
    deployments = config["models"]["sim_agent"]["deployments"]
    assert deployments[0]["api_keys"] == ["***", "***"]
    assert deployments[1]["endpoint"] == "https://gw.example/v1?api-version=2&api-key=***"
    assert config["models"]["deepseek_v3_0324"]["deployments"][0]["api_keys"] == ["${oc.env:AZURE_AI_API_KEY}"]


@pytest.mark.slow
def test_a_sweep_writes_no_literal_secret_in_its_snapshot_logs_or_database(run_cli: RunCli, tmp_path: Path) -> None:
    process = run_cli("run", "-m", "run.seed=1,2", "run.instances=1", KEYS, ENDPOINT)
    assert process.returncode == 0, process.stderr
    assert process.stdout.count("0 already stored, 5 executed") == 2
    (snapshot,) = tmp_path.glob("multirun/*/*/multirun.yaml")
    assert "${oc.env:FLEETBENCH_SECRET_" in snapshot.read_text(), "Hydra's snapshot holds references instead"
    assert len(list(tmp_path.glob("multirun/*/*/*/fleetbench.log"))) == 2
    _assert_nowhere(process, tmp_path, f"sqlite:///{tmp_path / 'fleetbench.db'}")


@pytest.mark.slow
@pytest.mark.parametrize("sweep", [False, True])
@pytest.mark.parametrize("shape", ["{key: VALUE}", "[{key: VALUE}]", "[[VALUE]]"])
def test_a_key_of_the_wrong_shape_is_refused_in_one_line_that_shows_no_key(
    run_cli: RunCli, tmp_path: Path, shape: str, sweep: bool
) -> None:
    keys = f"models.sim_agent.deployments.0.api_keys={shape.replace('VALUE', KEY_A)}"
    process = run_cli("run", *(["-m", "run.seed=1,2"] if sweep else []), "run.instances=1", keys)
    assert process.returncode == 2, process.stderr
    (line,) = [line for line in process.stderr.splitlines() if line.strip()]
    assert line.startswith("error: models.sim_agent.deployments[0].api_keys[0]: must be a string"), line
    assert not (tmp_path / "fleetbench.db").exists() and not (tmp_path / "outputs").exists()
    _assert_nowhere(process, tmp_path, f"sqlite:///{tmp_path / 'nothing.db'}")


def test_an_endpoint_carrying_credentials_is_refused_in_one_line_that_shows_neither(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """HTTP clients refuse to combine `user:password@` in the URL with the key's header, so every request would fail
    as if the endpoint were down: the run is refused before it starts, naming the variable the endpoint came from."""
    environment = {"AZURE_AI_ENDPOINT": "http://admin:pw-SECRET-9@127.0.0.1:9/x", "AZURE_AI_API_KEY": KEY_A}
    process = run_cli("run", "run.models=[DeepSeek-V3-0324]", "run.instances=1", env=environment)
    assert process.returncode == 2, process.stderr
    (line,) = [line for line in process.stderr.splitlines() if line.strip()]
    assert line.startswith(
        "error: models.deepseek_v3_0324.deployments[0].endpoint (from AZURE_AI_ENDPOINT): carries credentials"
    ), line
    assert "SECRET" not in process.stderr + process.stdout and KEY_A not in process.stderr + process.stdout
    assert not (tmp_path / "fleetbench.db").exists() and not (tmp_path / "outputs").exists()


FAILING_SHARDING = '''
from fleetbench.interfaces import ShardingStrategy


class Failing(ShardingStrategy):
    """A plugin bug that surfaces inside the Hydra job, after the run has begun."""

    def __init__(self, options):
        self.options = options

    def dispatch(self, units, lanes):
        raise RuntimeError("sharding plugin bug")
'''


@pytest.fixture
def failing_plugin(tmp_path: Path) -> dict[str, str]:
    site = tmp_path.parent / f"{tmp_path.name}-site"
    (site / "fbtp_failing").mkdir(parents=True)
    (site / "fbtp_failing" / "__init__.py").write_text(FAILING_SHARDING)
    dist = site / "fbtp_failing-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fbtp-failing\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""
        [fleetbench.sharding]
        failing = fbtp_failing:Failing
    """)
    )
    return {"PYTHONPATH": str(site)}


@pytest.mark.slow
@pytest.mark.postgres
def test_a_run_failing_inside_its_job_echoes_no_key_and_no_database_password(
    run_cli: RunCli, tmp_path: Path, postgres_url: str, failing_plugin: dict[str, str]
) -> None:
    url = postgres_url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@")
    process = run_cli(
        "run", "-m", "run.seed=1", "sharding=failing", KEYS, ENDPOINT, f"storage.url={url}", env=failing_plugin
    )
    assert process.returncode == 1
    assert "Error executing job with overrides" in process.stderr, "Hydra's own echo of the overrides was exercised"
    assert "sharding plugin bug" in process.stderr
    _assert_nowhere(process, tmp_path, postgres_url)
    assert _stored_config(postgres_url)["storage"]["url"].startswith("postgresql+psycopg://postgres:***@")


@pytest.mark.slow
@pytest.mark.postgres
def test_a_run_refused_before_it_starts_echoes_no_database_password(
    run_cli: RunCli, tmp_path: Path, postgres_url: str
) -> None:
    missing = postgres_url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@").rsplit("/", 1)[0] + "/fb_missing"
    process = run_cli("run", KEYS, f"storage.url={missing}")
    assert process.returncode == 1
    assert 'database "fb_missing" does not exist' in process.stderr
    _assert_nowhere(process, tmp_path, postgres_url)
    assert list(tmp_path.iterdir()) == []


# --- the mechanisms, in process ----------------------------------------------------------------------------------


def test_redact_hides_key_values_url_passwords_and_secret_query_parameters() -> None:
    config = {
        "api_keys": ["sk-1", "${oc.env:K}"],
        "password": "hunter2",
        "url": "postgresql://u:hunter2@h/db",
        "env_url": "postgresql://u:${oc.env:PW}@h/db",
        "endpoint": "https://h/p?api-version=1&api-key=abc&sig=xyz&code=c0de&x-api-key=k&access_token=t&keep=1",
        "hidden": "${oc.env:FLEETBENCH_SECRET_3}",
        "prompt": "What is the key? key=3",
    }
    assert redact(config) == {
        "api_keys": ["***", "${oc.env:K}"],
        "password": "***",
        "url": "postgresql://u:***@h/db",
        "env_url": "postgresql://u:${oc.env:PW}@h/db",
        "endpoint": "https://h/p?api-version=1&api-key=***&sig=***&code=***&x-api-key=***&access_token=***&keep=1",
        "hidden": "***",
        "prompt": "What is the key? key=3",
    }


def _resolved(overrides: list[str]) -> list[Any]:
    cfg = compose_config(overrides)
    return [OmegaConf.to_container(cfg[k], resolve=True) for k in ("run", "storage")] + [
        OmegaConf.to_container(cfg.models.sim_agent, resolve=True)
    ]


def test_hidden_overrides_compose_to_exactly_the_same_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetbench.config.secret_overrides import hide_secrets

    sweep = [
        f"models.sim_agent.deployments.0.api_keys=[{KEY_A},'b,c'],[{KEY_B}]",
        f"storage.url=postgresql://u:{DB_PASSWORD}@h:5432/db,sqlite:///x.db",
        ENDPOINT,
        "run.seed=1,2",
        "+models.sim_agent.deployments.1.params.token=tk",
        "models.sim_agent.deployments.2={name:Sim-Agent-3,api_keys:[zz],max_concurrency:3}",
        "models.sim_agent.deployments.2.api_version=${oc.env:HOME}",
    ]
    environ: dict[str, str] = {}
    hidden = hide_secrets(["-m", *sweep], environ)
    assert hidden[0] == "-m" and hidden[4] == "run.seed=1,2" and hidden[7] == sweep[6]
    for secret in SECRETS:
        assert all(secret not in override for override in hidden)
        assert secret in environ.values()
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    original_jobs, hidden_jobs = _sweep_jobs(sweep, True), _sweep_jobs(hidden[1:], True)
    assert len(original_jobs) == len(hidden_jobs) == 8
    for original, rewritten in zip(original_jobs, hidden_jobs, strict=True):
        assert _resolved(original) == _resolved(rewritten)


def test_hiding_never_reuses_a_variable_the_user_set() -> None:
    from fleetbench.config.secret_overrides import hide_secrets

    environ = {"FLEETBENCH_SECRET_0": "the user's own"}
    (hidden,) = hide_secrets([f"models.sim_agent.deployments.0.api_keys=[{KEY_A}]"], environ)
    assert hidden.endswith("=['${oc.env:FLEETBENCH_SECRET_1}']")
    assert environ == {"FLEETBENCH_SECRET_0": "the user's own", "FLEETBENCH_SECRET_1": KEY_A}


def test_an_unparsable_override_holding_a_secret_is_refused_without_echoing_it() -> None:
    from fleetbench.config.secret_overrides import hide_secrets

    with pytest.raises(ConfigError, match=r"api_keys: the override does not parse") as raised:
        hide_secrets([f"models.sim_agent.deployments.0.api_keys=[{KEY_A}"], {})
    assert KEY_A not in str(raised.value)


def test_the_value_of_a_hydra_flag_is_not_read_as_an_override() -> None:
    """`-cd /etc/passwd` was refused as an override holding a secret ("passwd" reads like a secret's key)."""
    from fleetbench.config.secret_overrides import hide_secrets

    args = ["-cd", "/srv/passwd", "-p", "hydra.launcher", "--config-name=config", "run.instances=1"]
    assert hide_secrets(args, environ={}) == args


def test_a_comma_in_a_secret_without_multirun_is_refused_without_echoing_it_or_its_placeholders(
    run_cli: RunCli,
) -> None:
    # Hydra would quote the rewritten value, `${oc.env:FLEETBENCH_SECRET_0}` references that tell the user nothing.
    process = run_cli("run", f"models.sim_agent.deployments.0.api_keys={KEY_A},{KEY_B}", "run.instances=1")
    assert process.returncode == 2
    assert process.stderr.strip() == (
        "error: models.sim_agent.deployments.0.api_keys: the value has a comma (not shown: it holds a secret): write a "
        "list (models.sim_agent.deployments.0.api_keys=[...]) for several values, quote it to keep it one string "
        "(models.sim_agent.deployments.0.api_keys='...'), or sweep over it with -m"
    )
    assert KEY_A not in process.stdout + process.stderr and "FLEETBENCH_SECRET" not in process.stderr
