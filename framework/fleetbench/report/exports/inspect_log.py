"""Transcripts as Inspect AI eval logs (`inspect view --log-dir DIR` opens them; `inspect_ai.log.read_eval_log`
reads them): one JSON log per base model, one sample per completed unit.

A sample's id is the unit key; its messages are the suite's `transcript_messages`; its score `outcome` is `C`
(full success), `P` (partial) or `I` (failure), Inspect's own convention; its metadata holds the cell factors, the
deployment that ran it, the seed and every metric. Units not done (infrastructure errors) are left out: they hold no
result. Inspect builds and writes a log whole, so a model with more than `SAMPLES_PER_LOG` completed units gets
several logs (`_part2`, ...), which `inspect view` lists side by side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetbench.errors import UserError
from fleetbench.gcpause import preload
from fleetbench.interfaces import Suite
from fleetbench.report.exports.files import staged

OUTCOME_SCORE = {"success": "C", "partial": "P", "failure": "I"}
_IDENTITY = {"unit_key", "suite", "base_model", "deployment", "lane_id", "run_id", "seed", "instance_index",
             "task_id", "outcome", "error_category", "infra_status", "turns", "started_at", "duration_s",
             "suite_scope", "model_scope", "cell_key"}  # fmt: skip


def _require() -> None:
    try:
        preload("inspect_ai", "inspect_ai.log", "inspect_ai.model", "inspect_ai.scorer")
    except ImportError:
        raise UserError(
            "export.format=inspect needs inspect_ai: pip install -c constraints.txt -e '.[inspect]' (from the checkout)"
        ) from None


def _message(role: str, text: str) -> Any:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    kinds = {"system": ChatMessageSystem, "assistant": ChatMessageAssistant}
    return kinds.get(role, ChatMessageUser)(content=text)


def _sample(suite: Suite, row: Mapping[str, Any], transcript: Mapping[str, Any], factors: Sequence[str]) -> Any:
    from inspect_ai.log import EvalSample
    from inspect_ai.scorer import Score

    messages = [_message(role, text) for role, text in suite.transcript_messages(transcript)]
    first_user = next((m.text for m in messages if m.role == "user"), "")
    metadata = {name: row[name] for name in ("deployment", "run_id", "seed", "instance_index", "task_id",
                                             "error_category", "turns", "duration_s") if name in row}  # fmt: skip
    metadata["factors"] = {name: row.get(name) for name in factors}
    metadata["metrics"] = {k: v for k, v in row.items() if k not in _IDENTITY and k not in factors}
    return EvalSample(
        id=str(row["unit_key"]),
        epoch=1,
        input=first_user,
        target="",
        messages=messages,
        scores={"outcome": Score(value=OUTCOME_SCORE[str(row["outcome"])], explanation=str(row["outcome"]))},
        metadata=metadata,
    )


def _log(suite: Suite, base_model: str, samples: list[Any], created: str) -> Any:
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalMetric, EvalResults, EvalScore, EvalSpec

    hits = {code: sum(1 for s in samples if s.scores["outcome"].value == code) for code in ("C", "P", "I")}
    total = len(samples)
    metrics = {
        "full_success_rate": EvalMetric(name="full_success_rate", value=hits["C"] / total if total else 0.0),
        "success_rate": EvalMetric(name="success_rate", value=(hits["C"] + hits["P"]) / total if total else 0.0),
    }
    return EvalLog(
        status="success",
        eval=EvalSpec(
            created=created,
            task=suite.name,
            task_version=0,
            dataset=EvalDataset(name=suite.name, samples=total),
            model=f"fleetbench/{base_model}",
            config=EvalConfig(),
            metadata={"source": "fleetbench export", "suite_version": suite.version},
        ),
        results=EvalResults(
            total_samples=total,
            completed_samples=total,
            scores=[EvalScore(name="outcome", scorer="fleetbench", metrics=metrics)],
        ),
        samples=samples,
    )


SAMPLES_PER_LOG = 5_000
"""A model with more completed units gets several logs (`..._part2.json`, ...): Inspect builds a log whole in
memory, so this bounds the export's memory whatever the number of units."""


def file_name(created: str, suite: str, base_model: str, part: int = 1) -> str:
    """`<created>_<suite>_<model>[_partN].json`, Inspect's own naming (its log listing sorts by the leading time)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", base_model)
    suffix = "" if part == 1 else f"_part{part}"
    return f"{created.replace(':', '-')}_{suite}_{safe}{suffix}.json"


def write_logs(
    suite: Suite, rows: Iterable[tuple[dict[str, Any], Mapping[str, Any]]], folder: Path, factors: Sequence[str]
) -> list[Path]:
    """One log per base model of the rows (which come ordered by base model), or one per `SAMPLES_PER_LOG` of its
    units, in Inspect's JSON log format: it reads and views like `.eval`, and Inspect writes it far faster (no zip
    entry per sample; the export's time is printed by benchmarks/bench_exports.py)."""
    _require()
    from inspect_ai.log import write_eval_log

    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    written: list[Path] = []

    def flush(model: str, samples: list[Any], part: int) -> None:
        target = folder / file_name(created, suite.name, model, part)
        with staged(target) as temporary:
            # Inspect checks the extension; the staged name must keep `.json`.
            named = temporary.with_name(temporary.name + ".json")
            try:
                write_eval_log(_log(suite, model, samples, created), str(named), format="json")
                named.replace(temporary)
            finally:
                named.unlink(missing_ok=True)
        written.append(target)

    current: str | None = None
    samples: list[Any] = []
    part = 1
    for row, transcript in rows:
        if row["outcome"] not in OUTCOME_SCORE:
            continue
        model = str(row["base_model"])
        if current is not None and (model != current or len(samples) == SAMPLES_PER_LOG):
            flush(current, samples, part)
            part = part + 1 if model == current else 1
            samples = []
        current = model
        samples.append(_sample(suite, row, transcript, factors))
    if current is not None and samples:
        flush(current, samples, part)
    return written
