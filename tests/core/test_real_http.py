"""Runs through real litellm, over 127.0.0.1, against a real `fleetbench serve` process.

Exact deployment names and each lane's own key reach the server, results count under the base model, the shipped
presets run unchanged, and injected faults (malformed replies, 429 with Retry-After, a refused key, a hung
deployment, refused connections) never change a model's result and are never counted as model failures: a lane that
fails is stopped (auth) or parked (timeouts, refused connections) and its units complete on the healthy lanes.
"""

from __future__ import annotations

import itertools
import json
import socket
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbench.testing.server.config import key_fingerprint
from fleetbench.testing.server.process import RunningServer, served
from tests.core.real_http import (
    FAST_RETRIES,
    assert_same_model_results,
    by_deployment,
    completed,
    environment,
    outcomes,
    planned,
    rows,
    run_through,
)

pytestmark = pytest.mark.slow

DEEPSEEK = ("DeepSeek-V3-0324", "DeepSeek-V3-0324-2", "DeepSeek-V3-0324-3")
JOB = ["run.models=[DeepSeek-V3-0324]", "run.instances=4"]
"""20 jsonl units on the three DeepSeek-V3-0324 deployments (Azure AI route)."""


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A fault-free server: every catalog deployment, answering at once."""
    with served(tmp_path_factory.mktemp("clean")) as server:
        yield server


@pytest.fixture(scope="module")
def baseline(clean: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Unit key -> outcome of `JOB` without any fault."""
    db = tmp_path_factory.mktemp("baseline") / "fb.db"
    run_through(clean, db, JOB)
    assert len(completed(db)) == planned(db) == 20
    return outcomes(db)


def test_exact_names_and_each_lanes_own_key_reach_the_server_and_results_count_under_the_base_model(
    clean: RunningServer, tmp_path: Path
) -> None:
    db = tmp_path / "fb.db"
    before = len(clean.requests())
    overrides = [
        "run.models=[deepseek-v3-0324-2,QWEN2.5-7B-INSTRUCT]",  # a suffixed spelling and a case variant
        "run.instances=2",
        "models.deepseek_v3_0324.deployments.1.api_keys=['${oc.env:SECOND_DEPLOYMENT_KEY}']",
    ]
    summary = run_through(clean, db, overrides, {"SECOND_DEPLOYMENT_KEY": "local-second-deployment"})
    assert summary.outcomes["infra_error"] == 0 and summary.executed == 20
    requests = by_deployment(clean.requests()[before:])
    assert set(requests) == {*DEEPSEEK, "qwen2.5-7b-instruct"}
    env = environment(clean)
    keys = {name: {e["key"] for e in entries} for name, entries in requests.items()}
    assert keys["DeepSeek-V3-0324"] == keys["DeepSeek-V3-0324-3"] == {key_fingerprint(env["AZURE_AI_API_KEY"])}
    assert keys["DeepSeek-V3-0324-2"] == {key_fingerprint("local-second-deployment")}
    per_key = Counter(e["key"] for e in requests["qwen2.5-7b-instruct"])
    per_credential = {
        row["credential_id"]: row["n"]
        for row in rows(db, "select credential_id, count(*) n from calls where deployment like 'qwen%' group by 1")
    }
    assert per_key == {key_fingerprint(env[f"GATEWAY_API_KEY_{i}"]): per_credential[f"key{i}"] for i in range(3)}
    stored = rows(db, "select base_model, count(*) n, count(distinct deployment) d from units group by 1 order by 1")
    assert stored == [
        {"base_model": "DeepSeek-V3-0324", "n": 10, "d": 3},
        {"base_model": "qwen2.5-7b-instruct", "n": 10, "d": 1},
    ]
    costs = rows(db, "select deployment, sum(cost_usd) c from calls group by 1")
    assert all(row["c"] > 0 for row in costs if row["deployment"] in DEEPSEEK)  # litellm's cost map prices them


PRESETS = ["phase5_1", "phase5_1_closed", "phase5_2", "phase5_3", "phase5_4", "phase5_5"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_real_model_preset_runs_unchanged_through_litellm(
    clean: RunningServer, tmp_path: Path, preset: str
) -> None:
    """The preset as shipped (models, grid, catalog limits: the gateway's 120 rpm per key included), one task type
    and one instance per cell to keep it short."""
    db = tmp_path / "fb.db"
    before = len(clean.requests())
    summary = run_through(clean, db, [f"experiment={preset}", "run.instances=1", "suite.task_types=[simple_task]"])
    assert summary.executed == summary.planned > 0 and summary.outcomes["infra_error"] == 0
    models = {row["base_model"] for row in rows(db, "select distinct base_model from units")}
    served_names = set(by_deployment(clean.requests()[before:]))
    deployments = {row["deployment"] for row in rows(db, "select distinct deployment from calls")}
    assert served_names == deployments and len(models) >= 5
    assert rows(db, "select count(*) n from calls where status != 'ok'") == [{"n": 0}]


def test_native_tool_calls_round_trip_over_http(clean: RunningServer, tmp_path: Path) -> None:
    db = tmp_path / "fb.db"
    overrides = ["suite=workflow", "run.models=[gpt-4o-mini]", "models.gpt_4o_mini.tool_calling=native"]
    overrides += ["run.instances=2", "suite.task_types=[simple_task]", "suite.prompt_types=[optimal]"]
    summary = run_through(clean, db, overrides)
    assert summary.executed == 2 and summary.outcomes["infra_error"] == 0
    transcripts = [json.loads(zlib.decompress(row["data"])) for row in rows(db, "select data from transcripts")]
    calls = [call for t in transcripts for turn in t["turns"] for call in turn.get("native_calls") or ()]
    assert calls and all(call["name"] for call in calls), "the model answered with native function calls"
    assert all(t["prompt"]["native_mode"] for t in transcripts)


def test_five_percent_malformed_replies_change_no_result(
    baseline: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = {"seed": 15, "defaults": {"faults": {"malformed_json": 0.05}}}  # seed 15 draws two in the first 20
    with served(tmp_path_factory.mktemp("malformed"), config) as server:
        db = tmp_path_factory.mktemp("malformed-run") / "fb.db"
        run_through(server, db, [*JOB, *FAST_RETRIES])
        malformed = [e for e in server.requests() if e.get("fault") == "malformed_json"]
    assert len(completed(db)) == planned(db) == 20
    assert_same_model_results(db, baseline)
    transient = rows(db, "select count(*) n from calls where status = 'transient' and http_status is null")
    assert malformed and transient == [{"n": len(malformed)}]


def test_replies_claiming_impossible_token_counts_are_malformed_and_change_no_result(
    baseline: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A gateway whose usage claims 5,000,000,000 prompt tokens: stored, the count failed every write of the run on
    PostgreSQL (a 32-bit column), and 1e20 failed SQLite with a traceback. Such a reply is malformed: asked again,
    recorded as a transient failure without its counts."""
    config = {"seed": 15, "defaults": {"faults": {"absurd_usage": 0.1}}}
    with served(tmp_path_factory.mktemp("absurd"), config) as server:
        db = tmp_path_factory.mktemp("absurd-run") / "fb.db"
        run_through(server, db, [*JOB, *FAST_RETRIES])
        absurd = [e for e in server.requests() if e.get("fault") == "absurd_usage"]
    assert len(completed(db)) == planned(db) == 20
    assert_same_model_results(db, baseline)
    malformed = rows(db, "select count(*) n from calls where status = 'transient' and error like 'malformed reply: "
                         "its usage claims 5000000000 prompt tokens%'")  # fmt: skip
    assert absurd and malformed == [{"n": len(absurd)}]
    assert rows(db, "select max(prompt_tokens) most from calls")[0]["most"] < 2**31


def test_half_the_requests_answered_429_are_retried_only_after_their_retry_after(
    baseline: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One request in flight per deployment, so every request the server sees after a 429 was sent after it."""
    config = {"defaults": {"faults": {"rate_limited": 0.5}, "retry_after_s": 0.2}}
    one_each = [f"models.deepseek_v3_0324.deployments.{i}.max_concurrency=1" for i in range(3)]
    with served(tmp_path_factory.mktemp("throttled"), config) as server:
        db = tmp_path_factory.mktemp("throttled-run") / "fb.db"
        run_through(server, db, [*JOB, *one_each, "scheduler.max_attempts=40"])
        requests = server.requests()
    assert len(completed(db)) == planned(db) == 20
    assert_same_model_results(db, baseline)
    throttled = [e for e in requests if e["status"] == 429]
    assert len(throttled) >= 10
    for entries in by_deployment(requests).values():
        for previous, following in itertools.pairwise(entries):
            if previous["status"] == 429:
                assert following["received_at"] >= previous["answered_at"] + previous["retry_after_s"]
    limited = rows(db, "select count(*) n from calls where status = 'rate_limited' and http_status = 429")
    assert limited == [{"n": len(throttled)}]


@pytest.fixture(scope="module")
def refused_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A run of qwen2.5-7b-instruct (three keys = three lanes) whose second key the gateway answers with 401."""
    probe = tmp_path_factory.mktemp("probe")
    with served(probe) as server:
        rejected = environment(server)["GATEWAY_API_KEY_1"]
    config = {"deployments": {"qwen2.5-7b-instruct": {"reject_keys": [key_fingerprint(rejected)]}}}
    with served(tmp_path_factory.mktemp("refused"), config) as server:
        db = tmp_path_factory.mktemp("refused-run") / "fb.db"
        run_through(server, db, ["run.models=[qwen2.5-7b-instruct]", "run.instances=2"])
        (db.parent / "requests.json").write_text(repr(server.requests()))
        refused = {e["key"] for e in server.requests() if e["status"] == 401}
        assert refused == {key_fingerprint(rejected)}
        assert {e["key"] for e in server.requests() if e["status"] == 200} == {
            key_fingerprint(environment(server)[f"GATEWAY_API_KEY_{i}"]) for i in (0, 2)
        }
    yield db


def test_a_refused_key_stops_its_lane_after_one_call_and_every_unit_completes(refused_key: Path) -> None:
    auth = rows(refused_key, "select credential_id, http_status from calls where status = 'auth'")
    assert auth == [{"credential_id": "key1", "http_status": 401}]  # one call: the lane stops at once
    assert rows(refused_key, "select count(*) n from units where outcome = 'infra_error'") == [{"n": 0}]
    assert len(completed(refused_key)) == planned(refused_key)
    errors = rows(refused_key, "select error from calls where status = 'auth'")
    assert errors and all("local-gateway-api-key-1" not in row["error"] for row in errors), "the echoed key"


@pytest.fixture(scope="module")
def hung(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = {"deployments": {"DeepSeek-V3-0324-3": {"faults": {"hang": 1.0}, "hang_s": 120}}}
    with served(tmp_path_factory.mktemp("hung"), config) as server:
        db = tmp_path_factory.mktemp("hung-run") / "fb.db"
        run_through(server, db, [*JOB, "scheduler.request_timeout_s=1"])
        abandoned = [e for e in server.requests() if e["deployment"] == "DeepSeek-V3-0324-3"]
    assert abandoned and all(e["status"] is None for e in abandoned), "the server saw every hung request abandoned"
    return db


def test_a_hung_deployment_times_out_and_its_units_complete_elsewhere(hung: Path, baseline: dict[str, str]) -> None:
    assert_same_model_results(hung, baseline)
    assert rows(hung, "select distinct status from calls where deployment = 'DeepSeek-V3-0324-3'") == [
        {"status": "timeout"}
    ]
    assert rows(hung, "select count(*) n from units where deployment = 'DeepSeek-V3-0324-3'") == [{"n": 0}]
    assert len(completed(hung)) == planned(hung)


@pytest.fixture(scope="module")
def refused_connections(clean: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
        db = tmp_path_factory.mktemp("refusing") / "fb.db"
        run_through(clean, db, [*JOB, *FAST_RETRIES, f"models.deepseek_v3_0324.deployments.1.endpoint={closed}"])
    return db


def test_refused_connections_park_that_deployment_and_every_unit_completes(
    refused_connections: Path, baseline: dict[str, str]
) -> None:
    assert_same_model_results(refused_connections, baseline)
    calls = rows(refused_connections, "select distinct status, http_status from calls where deployment like '%-2'")
    assert calls == [{"status": "unreachable", "http_status": None}]
    assert rows(refused_connections, "select count(*) n from units where deployment like '%-2'") == [{"n": 0}]
    assert len(completed(refused_connections)) == planned(refused_connections)
