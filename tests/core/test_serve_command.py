"""`fleetbench serve` itself: plain HTTP clients get OpenAI- and Azure-shaped answers, its request log holds key
fingerprints only, bad configuration is one line and exit 2, `--print-env` points the catalog at it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fleetbench.testing.server.config import key_fingerprint
from fleetbench.testing.server.process import RunningServer, served
from tests.conftest import RunCli, stderr_lines

pytestmark = pytest.mark.slow

KEY = "plain-client-key-42"
BODY = {"model": "Plain-Model", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


def post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = {
        "deployments": {"Plain-Model": {"protocol": "jsonl", "model": "Sim-Agent"}, "Tiny": {"max_concurrency": 1}}
    }
    with served(tmp_path_factory.mktemp("plain"), config) as running:
        yield running


def test_openai_and_azure_routes_answer_plain_clients(server: RunningServer) -> None:
    bearer = {"Authorization": f"Bearer {KEY}"}
    status, body, _ = post(f"{server.url}/v1/chat/completions", BODY, bearer)
    assert status == 200 and body["choices"][0]["message"]["content"] == "4" and body["usage"]["total_tokens"] > 0
    azure = f"{server.url}/openai/deployments/Plain-Model/chat/completions?api-version=2024-12-01-preview"
    status, body, _ = post(azure, {"messages": BODY["messages"]}, {"api-key": KEY})
    assert status == 200 and body["model"] == "Plain-Model"
    status, body, _ = post(f"{server.url}/models/chat/completions", BODY, bearer)
    assert status == 200


def test_wrong_names_missing_keys_and_missing_protocols_are_refused(server: RunningServer) -> None:
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert post(f"{server.url}/v1/chat/completions", {**BODY, "model": "plain-model"}, bearer)[0] == 404  # case kept
    assert post(f"{server.url}/v1/chat/completions", BODY, {})[0] == 401
    status, body, _ = post(f"{server.url}/v1/chat/completions", {**BODY, "model": "Tiny"}, bearer)
    assert status == 400 and "X-Fleetbench-Protocol" in body["error"]["message"]
    unknown = {**bearer, "X-Fleetbench-Protocol": "nope"}
    status, body, _ = post(f"{server.url}/v1/chat/completions", BODY, unknown)
    assert status == 400, "a protocol no suite plays is the request's fault"
    assert "'nope'" in body["error"]["message"] and "jsonl" in body["error"]["message"]


def test_the_request_log_names_deployment_and_key_fingerprint_never_the_key(server: RunningServer) -> None:
    post(f"{server.url}/v1/chat/completions", BODY, {"Authorization": f"Bearer {KEY}"})
    entry = server.requests()[-1]
    assert (entry["deployment"], entry["key"], entry["status"]) == ("Plain-Model", key_fingerprint(KEY), 200)
    assert entry["answered_at"] >= entry["received_at"]
    assert KEY not in server.log_path.read_text()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"deployments": {"X": {"latncy": 1}}}, "deployments.X: unknown key 'latncy'; valid keys:"),
        ({"defaults": {"max_concurency": 3}}, ": defaults: unknown key 'max_concurency'; valid keys:"),
        ({"defaults": {"faults": {"eror_500": 1}}}, ": defaults.faults: unknown key 'eror_500'; valid keys:"),
        ({"defaults": {"faults": {"error_500": 2}}}, "faults.error_500: must be a probability within [0, 1], got 2"),
        ({"defaults": {"latency": {"distribution": "pareto"}}}, "latency.distribution: 'pareto' is not valid"),
        ({"deployments": {"X": {"profile": "genius"}}}, "profile: 'genius' is not a profile"),
        ({"sed": 1}, "unknown key 'sed'; valid keys: defaults, deployments, model_seed, seed"),
        # A bare string was once refused character by character: `abc` made the keys 'a', 'b' and 'c' answer 401.
        ({"deployments": {"X": {"reject_keys": "abc"}}}, "deployments.X.reject_keys: must be a list of keys"),
        ({"deployments": ["X", "Y"]}, ": deployments: must be a mapping of deployment name to its section"),
        ({"deployments": {"X": {"protocol": "wokflow"}}}, "protocol: 'wokflow' is not valid; choices: auto, "),
        ({"deployments": {"X": {"model": ["A", "B"]}}}, "deployments.X.model: must be a base model name"),
        ({"defaults": {"reasoning_only": "yes"}}, "reasoning_only: must be true or false, got 'yes'"),
        ({"defaults": {"max_concurrency": True}}, "max_concurrency: must be a positive integer or null, got True"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    run_cli: RunCli, tmp_path: Path, config: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(json.dumps(config))
    process = run_cli("serve", "--port", "0", "--config", str(path))
    assert process.returncode == 2
    (line,) = stderr_lines(process)
    assert line.startswith("error: serve") and expected in line, line


def test_a_log_file_that_cannot_be_written_is_named_not_the_listener(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    for path in ("/proc/fleetbench-serve.jsonl", str(tmp_path / "dir.jsonl")):
        process = run_cli("serve", "--port", "0", "--log", path)
        assert process.returncode == 2
        (line,) = stderr_lines(process)
        assert line.startswith(f"error: --log: cannot write {path}: "), line


def test_an_unknown_option_is_refused(run_cli: RunCli) -> None:
    process = run_cli("serve", "--latency", "1")
    assert process.returncode == 2 and "unknown argument '--latency'" in process.stderr


def test_print_env_points_every_real_model_entry_at_the_server(run_cli: RunCli) -> None:
    process = run_cli("serve", "--print-env", "--port", "9999")
    env = dict(line.split("=", 1) for line in process.stdout.splitlines())
    assert env["AZURE_AI_ENDPOINT"] == env["AZURE_OPENAI_ENDPOINT"] == "http://127.0.0.1:9999"
    assert env["GATEWAY_BASE_URL"] == "http://127.0.0.1:9999/v1"
    assert len({env[f"GATEWAY_API_KEY_{i}"] for i in range(3)}) == 3


def test_the_readme_configuration_example_is_valid() -> None:
    import yaml

    from fleetbench.testing.server.config import build_config

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("**Latency, limits and faults**", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    config = build_config({"DeepSeek-V3-0324-3": {"model": "DeepSeek-V3-0324"}}, yaml.safe_load(block), {}, "README")
    flaky = config.deployments["DeepSeek-V3-0324-3"]
    assert flaky.faults.rate_limited == 0.5 and flaky.latency.distribution == "uniform" and flaky.max_concurrency == 25
    assert config.deployments["My-Local-Model"].reasoning_only


def test_a_request_log_that_fails_to_write_is_reported_once_and_requests_are_still_answered(tmp_path: Path) -> None:
    """`/dev/full` opens but refuses every write (a full disk): each request was answered 500 with a traceback."""
    config = {"deployments": {"Plain-Model": {"protocol": "jsonl", "model": "Sim-Agent"}}}
    with served(tmp_path, config, args=["--log", "/dev/full"]) as running:
        for _ in range(3):
            status, body, _ = post(f"{running.url}/v1/chat/completions", BODY, {"Authorization": f"Bearer {KEY}"})
            assert status == 200 and body["choices"][0]["message"]["content"] == "4"
    lines = (tmp_path / "serve-stderr.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [
        "warning: --log: writing /dev/full failed (No space left on device); requests are still answered, no longer "
        "logged"
    ]
