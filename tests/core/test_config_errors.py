"""Bad input: one line naming the key and the valid choices, exit code 2, nothing written (real CLI subprocesses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunCli, stderr_lines

CASES = [
    pytest.param(["run.models=[nope]"], ["run.models[0]", "unknown model 'nope'", "Sim-Agent"], id="unknown-model"),
    pytest.param(["storage=mongo"], ["storage", "'mongo'", "postgres, sql, sqlite"], id="unknown-plugin"),
    pytest.param(["sharding=fastest"], ["sharding", "'fastest'", "dynamic, even, weighted"], id="unknown-sharding"),
    pytest.param(
        ["suite.plugin=workflow"], ["suite.plugin", "'workflow'", "'jsonl'", "suite=workflow"], id="plugin-renamed"
    ),
    pytest.param(["run.instancs=3"], ["run.instancs", "no such key", "instances"], id="typo-in-key"),
    pytest.param(
        ["models.deepseek_v3_0324.name=sim-agent"],
        ["models.deepseek_v3_0324.name: 'sim-agent' is also the name of models.sim_agent", "declared once"],
        id="base-model-declared-twice",
    ),
    pytest.param(
        ["models.sim_agent.deployments.1.name='Sim\x1b[2JX'"],
        ["models.sim_agent.deployments[1].name: holds the control character '\\x1b' (at 3)"],
        id="escape-sequence-in-a-deployment-name",
    ),
    pytest.param(
        ["models.sim_agent.name='Sim\u202eX'"],
        ["models.sim_agent.name: holds the control character '\\u202e' (at 3)"],
        id="right-to-left-override-in-a-model-name",
    ),
    pytest.param(
        ["models.sim_agent.deployments.5.rpm=5"],
        ["models.sim_agent.deployments[5]: no such entry; the list has 3 (indices 0 to 2)"],
        id="deployment-index-past-the-end",
    ),
    pytest.param(
        ["run.models.1=Sim-Weak"], ["run.models[1]: no such entry; the list has 1 (index 0)"], id="list-index-past-end"
    ),
    pytest.param(["+run.extra=1"], ["run.extra", "no such key", "instances"], id="added-unknown-key"),
    pytest.param(["+foo.bar=1"], ["foo: no such key", "scheduler, sharding"], id="added-unknown-top-level-key"),
    pytest.param(
        ["scheduler.breaker_cooldown_s=100", "scheduler.breaker_cooldown_max_s=1"],
        ["scheduler.breaker_cooldown_max_s", "at least scheduler.breaker_cooldown_s (100), got 1"],
        id="cooldown-max-below-base",
    ),
    pytest.param(
        ["storage.urll=x.db"],
        ["storage.urll", "no such key", "busy_timeout_s, echo, idle_transaction_timeout_s, url"],
        id="plugin-typo",
    ),
    pytest.param(
        ["suite=workflow", "suite.severty=light"], ["suite.severty", "no such key", "severity"], id="typo-after-switch"
    ),
    pytest.param(["suite.scorer=7"], ["suite.scorer", "'7'", "contains, exact, regex"], id="bad-plugin-option-value"),
    pytest.param(["sharding=even", "sharding.lane_index=1"], ["sharding.lane_index", "no such key"], id="no-options"),
    pytest.param(["storage=sqlit"], ["storage", "'sqlit'", "postgres, sql, sqlite"], id="unknown-group-choice"),
    pytest.param(
        ["models.gpt_5_mini.aliases=[deepseek-v3]"],
        ["'deepseek-v3'", "'gpt-5-mini'", "'DeepSeek-V3-0324'"],
        id="alias-claimed-twice",
    ),
    pytest.param(
        ["models.sim_agent.deployments.1.rpm=-5"], ["models.sim_agent.deployments[1].rpm", "-5"], id="negative-rate"
    ),
    pytest.param(
        ["models.sim_agent.deployments.0.max_concurrency=0"], ["max_concurrency", "from 1 to"], id="zero-concurrency"
    ),
    pytest.param(
        ["models.sim_agent.deployments.2.max_concurrency=100000000"],
        ["models.sim_agent.deployments[2].max_concurrency", "10,000", "100000000"],
        id="absurd-concurrency",
    ),
    pytest.param(["run.instances=1000000000000"], ["run.instances", "10,000,000"], id="absurd-instances"),
    pytest.param(
        ["run.label=a,b"], ["run.label: 'a,b' has a comma", "run.label='a,b'", "run.label=[a,b]", "-m"], id="comma"
    ),
    pytest.param(
        ["run.label=[/x]"], ["run.label: expected text, got '[/x]'", "quote it: run.label='[/x]'"], id="bracketed-text"
    ),
    pytest.param(["scheduler.write_batch=0"], ["scheduler.write_batch", "from 1"], id="zero-write-batch"),
    pytest.param(["scheduler.request_timeout_s=inf"], ["scheduler.request_timeout_s", "inf"], id="infinite-timeout"),
    pytest.param(
        ["scheduler.deadline_s=-5"], ["scheduler.deadline_s", "null or more than 0", "-5"], id="negative-deadline"
    ),
    pytest.param(
        ["scheduler.deadline_s=0"], ["scheduler.deadline_s", "null or more than 0", "got 0"], id="zero-deadline"
    ),
    pytest.param(
        ["--cfg", "job", "--resolve"], ["--resolve would print the API keys", "--cfg job"], id="resolve-secrets"
    ),
    pytest.param(
        ["--cfg", "job", "-p", "models", "--resolve"],
        ["--resolve would print", "-p: hydra.launcher"],
        id="resolve-models",
    ),
    pytest.param(
        ["storage=postgres", "storage.url=postgresql://postgres:pw-SECRET@127.0.0.1:abc/x"],
        ["storage.url: port 'abc' is not a number"],
        id="non-numeric-port",
    ),
    pytest.param(
        ["storage=postgres", "storage.url=postgresql://u:pw-SECRET@127.0.0.1:5432/"],
        ["storage.url: 'postgresql://u:***@127.0.0.1:5432/' names no database", "USER@HOST:PORT/DB"],
        id="server-url-without-database",
    ),
    pytest.param(
        ["models.sim_agent.deployments.0.max_concurency=3"],
        ["models.sim_agent.deployments[0].max_concurency: no such key", "max_concurrency, name, params, rpm"],
        id="typo-under-a-deployment",
    ),
    pytest.param(["scheduler.breaker_failures=0"], ["scheduler.breaker_failures", "from 1"], id="breaker-never-trips"),
    pytest.param(["scheduler.ramp_step_s=-0.1"], ["scheduler.ramp_step_s", "from 0"], id="ramp-backwards"),
    pytest.param(
        ["models.sim_agent.deployments.1.params.outage=melted"],
        ["models.sim_agent.deployments[1].params.outage", "'melted'", "auth, hang, not_found"],
        id="unknown-outage",
    ),
    pytest.param(
        ["models.sim_agent.generation.temperature=-1"], ["models.sim_agent.generation.temperature"], id="bad-generation"
    ),
    pytest.param(["run.instances=many"], ["run.instances", "many"], id="wrong-type"),
    pytest.param(["suite=workflow", "suite.classifier=llm"], ["run.judge", "Sim-Agent"], id="judge-missing"),
    pytest.param(["run.judge=Nope"], ["run.judge", "'Nope'", "Sim-Agent"], id="unknown-judge-where-none-is-needed"),
    pytest.param(
        ["suite=workflow", "suite.tool_registry=/nonexistent/registry.json"],
        ["suite", "registry.json", "not found"],
        id="missing-tool-registry",
    ),
    pytest.param(
        ["suite=workflow", "suite.severity=extreme"], ["suite.severity", "light, medium, severe"], id="unknown-severity"
    ),
    pytest.param(
        ["suite=workflow", "suite.prompt_types=[optimal,flawless]"],
        ["suite.prompt_types", "'flawless'"],
        id="unknown-prompt-type",
    ),
    pytest.param(
        ["models.sim_agent.params.profile=genius"],
        ["models.sim_agent.params.profile", "strong"],
        id="unknown-provider-param",
    ),
    pytest.param(["suite.categories=[poetry]"], ["suite", "'poetry'", "arithmetic"], id="unknown-suite-option-value"),
    pytest.param(
        ["run.seed=9223372036854775808"],
        ["run.seed", "signed 64-bit", "9223372036854775807", "got 9223372036854775808"],
        id="seed-beyond-64-bits",
    ),
    pytest.param(
        ["models.sim_agent.deployments.1.name=" + "d" * 256],
        ["models.sim_agent.deployments[1].name", "256 characters", "at most 255"],
        id="deployment-name-too-long",
    ),
    pytest.param(
        ["models.sim_agent.deployments.1.name=" + "d" * 252, "models.sim_agent.deployments.1.api_keys=[a,b]"],
        ["models.sim_agent.deployments[1].name", "lane id", "257 characters", "at most 255"],
        id="lane-id-too-long",
    ),
    pytest.param(
        ["models.sim_agent.deployments.0.api_keys=[${oc.env:FLEETBENCH_TEST_UNSET_SECRET}]"],
        ["models.sim_agent.deployments[0].api_keys[0]", "FLEETBENCH_TEST_UNSET_SECRET"],
        id="missing-secret-env",
    ),
    pytest.param(
        ["run.label='a\udcedb'"],  # what a shell passes for the bytes ED A0 80: quoted, it parses
        ["run.label", "holds a lone surrogate", "not valid Unicode text"],
        id="label-with-a-lone-surrogate",
    ),
    pytest.param(
        ["run.label=a\udcffb"],  # the bytes 61 FF 62: not UTF-8, and no quoting makes them text
        ["run.label: the override is not UTF-8 text (b'run.label=a\\xffb')"],
        id="label-not-utf8",
    ),
    pytest.param(["report.confidence=1.5"], ["report.confidence", "from 0.5 to below 1, got 1.5"], id="confidence"),
]


@pytest.mark.parametrize(("overrides", "expected"), CASES)
def test_bad_config_fails_with_one_line_and_exit_2_writing_nothing(
    run_cli: RunCli, tmp_path: Path, overrides: list[str], expected: list[str]
) -> None:
    process = run_cli("run", *overrides)
    lines = stderr_lines(process)
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1, process.stderr
    for fragment in expected:
        assert fragment in lines[0]
    assert "Traceback" not in process.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be written on bad input"


def test_bad_config_in_one_sweep_job_stops_the_whole_sweep_before_any_job(run_cli: RunCli, tmp_path: Path) -> None:
    process = run_cli("run", "-m", "run.instances=1", "run.models=[Sim-Agent],[nope]")
    assert process.returncode == 2
    assert "unknown model 'nope'" in process.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["status", "runs", "report"])
def test_a_bare_word_given_to_a_reading_command_is_refused_in_one_line(
    run_cli: RunCli, tmp_path: Path, command: str
) -> None:
    """`status` and `runs` ignored it and exited 0 (a README follower), where `report` refused it."""
    process = run_cli(command, "bogus")
    assert process.returncode == 2, process.stderr
    assert stderr_lines(process) == [
        "error: bogus: the override 'bogus' does not parse (Error parsing override 'bogus'; missing EQUAL at "
        "'<EOF>'); quote a value holding characters other than letters, digits and _-./:, e.g. bogus=''"
    ]
    assert list(tmp_path.iterdir()) == []


def test_unknown_command_lists_the_commands(run_cli: RunCli) -> None:
    process = run_cli("frobnicate")
    assert process.returncode == 2
    assert "names, plugins, report, run, runs, serve, show" in process.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            '{"id": 2, "prompt": "p", "reference": "(unclosed", "scorer": "regex"}', "not a valid regular", id="regex"
        ),
        pytest.param(f'{{"id": "{"i" * 256}", "prompt": "p", "reference": "r"}}', "256 characters", id="long-id"),
    ],
)
def test_a_dataset_item_that_could_not_be_scored_or_stored_fails_before_anything_runs(
    run_cli: RunCli, tmp_path: Path, line: str, expected: str
) -> None:
    dataset = tmp_path / "items.jsonl"
    dataset.write_text('{"id": 1, "prompt": "p", "reference": "r"}\n' + line + "\n")
    process = run_cli("run", f"suite.dataset={dataset}")
    lines = stderr_lines(process)
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1 and f"{dataset}:2:" in lines[0] and expected in lines[0], process.stderr
    assert list(tmp_path.iterdir()) == [dataset], "nothing may be written on bad input"


def test_a_suite_declaring_a_name_no_storage_can_hold_is_refused_at_validation() -> None:
    from collections.abc import Iterator, Sequence

    from fleetbench.config.spec import _check_suite_names
    from fleetbench.errors import ConfigError
    from fleetbench.interfaces import Suite
    from fleetbench.types import Cell, Episode, MetricSpec

    class BadMetricSuite(Suite):
        name, version = "bad", "1"

        def cells(self, base_model: str) -> Iterator[Cell]:
            yield Cell("bad", base_model, ())

        async def run_episode(self, unit: object, chat: object, context: object) -> Episode:
            raise NotImplementedError

        def metrics(self) -> Sequence[MetricSpec]:
            return (MetricSpec("tool calls", "a name with a space", "mean"),)

    with pytest.raises(ConfigError, match=r"suite: plugin 'bad' declares metric 'tool calls': names must match"):
        _check_suite_names(BadMetricSuite(None))
