"""An LLM judge runs through the same lanes as everything else; its calls are recorded but never a model's share."""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections import Counter
from pathlib import Path

from fleetbench.config import compose_config, resolve_common, resolve_run
from fleetbench.runner import run
from fleetbench.types import ReportFilter


def test_judge_calls_go_to_the_judge_lanes_and_verdicts_come_from_it(tmp_path: Path) -> None:
    db = tmp_path / "judge.db"
    overrides = [
        f"storage.url=sqlite:///{db}",
        "run.progress=off",
        "experiment=workflow_demo",
        "run.instances=1",
        "suite.classifier=llm",
        "run.judge=sim-weak",
    ]
    spec = resolve_run(compose_config(overrides))
    assert spec.judge is not None and spec.judge.name == "Sim-Weak"
    summary = run(spec)
    judge_calls = summary.calls_by_deployment["Sim-Weak"] + summary.calls_by_deployment["Sim-Weak-2"]
    with sqlite3.connect(db) as connection:
        non_full = connection.execute("select count(*) from units where outcome != 'success'").fetchone()[0]
        sources = Counter(
            (json.loads(zlib.decompress(data)).get("error") or {}).get("source")
            for (data,) in connection.execute("select data from transcripts")
        )
    assert non_full > 0
    assert judge_calls == non_full, "one judge request per non-full unit"
    assert sources["llm"] == non_full
    common = resolve_common(compose_config(overrides))
    storage = common.storage.create(naming=common.naming)
    try:
        shares = storage.deployment_shares(ReportFilter(suite="workflow"))
    finally:
        storage.close()
    assert {share["deployment"] for share in shares} == {"Sim-Agent", "Sim-Agent-2", "Sim-Agent-3"}
