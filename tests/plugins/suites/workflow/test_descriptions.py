"""A task file's own descriptions reach the model (reference §1.4, §1.5): the level's text, else the task's description;
only a task with neither is worded from its required tools. The original's per-difficulty files are read as such."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from fleetbench.interfaces import EpisodeContext
from fleetbench.testing.units import make_unit
from fleetbench.types import Cell, Completion, DeploymentSpec, ModelSpec, Request
from fleetbench_plugins.suites.workflow import WorkflowOptions, WorkflowSuite
from fleetbench_plugins.suites.workflow.difficulty import (
    SOURCE_LEVEL,
    SOURCE_RENDERED,
    SOURCE_TASK,
    TaskText,
    render_description,
    task_description,
)
from fleetbench_plugins.suites.workflow.model import DIFFICULTIES, Task
from fleetbench_plugins.suites.workflow.prompts import build_prompt
from fleetbench_plugins.suites.workflow.registry import load_registry
from fleetbench_plugins.suites.workflow.tasks import load_tasks

REGISTRY = load_registry()


def _task_line(user: str) -> str:
    return next(line for line in user.splitlines() if line.startswith("Task: ")).removeprefix("Task: ")


def test_the_level_text_then_the_description_then_rendering() -> None:
    own = Task("t1", "simple_task", "Archive last month's ledger.", ("utility_cache",),
               descriptions={"hard": "Make the ledger go away, somehow."})  # fmt: skip
    assert task_description(own, "hard", REGISTRY) == TaskText("Make the ledger go away, somehow.", SOURCE_LEVEL)
    for level in ("very_easy", "easy", "medium", "very_hard"):
        assert task_description(own, level, REGISTRY) == TaskText("Archive last month's ledger.", SOURCE_TASK)
    bare = Task("t2", "simple_task", "", ("utility_cache",), descriptions={"easy": "Cache it."})
    assert task_description(bare, "easy", REGISTRY).source == SOURCE_LEVEL
    rendered = task_description(bare, "very_easy", REGISTRY)
    assert rendered == TaskText(render_description(bare, "very_easy", REGISTRY), SOURCE_RENDERED)
    assert "utility_cache" in rendered.text


@pytest.mark.parametrize("prompt_type", ["baseline", "optimal", "cot", "flawed_tool_misuse"])
def test_the_prompt_shows_the_task_files_description(prompt_type: str) -> None:
    task = Task("t3", "basic_task", "Pull the CSV export and file it under reports.", ("file_operations_reader",))
    for level in DIFFICULTIES:
        bundle = build_prompt(task, prompt_type, level, REGISTRY)
        assert _task_line(bundle.user) == task.description
        assert bundle.description_source == SOURCE_TASK


def test_the_shipped_tasks_are_rendered_at_every_level() -> None:
    # The shipped file carries no descriptions on purpose: the difficulty factor must change the wording.
    for task in list(load_tasks())[::37]:
        texts = set()
        for level in DIFFICULTIES:
            bundle = build_prompt(task, "baseline", level, REGISTRY)
            assert bundle.description_source == SOURCE_RENDERED
            texts.add(_task_line(bundle.user))
        assert len(texts) == len(DIFFICULTIES)


def _write(path: Path, tasks: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"tasks": tasks}), encoding="utf-8")
    return path


TYPES = ["simple_task", "basic_task"]


def _tasks(text: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{kind}-1", "task_type": kind, "description": f"{text} ({kind})", "required_tools": ["utility_cache"]}
        for kind in TYPES
    ]


class _Quiet:
    async def __call__(self, request: Request) -> Completion:
        return Completion("TASK_COMPLETED")


def _prompt_of(suite: WorkflowSuite, difficulty: str) -> dict[str, Any]:
    cell = Cell("workflow", "M", (("prompt_type", "baseline"), ("difficulty", difficulty),
                                  ("tool_success_rate", 0.8), ("task_type", "simple_task")))  # fmt: skip
    unit = make_unit(hashlib.sha256(difficulty.encode()).hexdigest(), cell, 0, 1)
    model = ModelSpec("M", "simulated", (DeploymentSpec("M"),))
    episode = asyncio.run(suite.run_episode(unit, _Quiet(), EpisodeContext(model, "lane", "M")))
    assert episode.transcript is not None
    prompt: dict[str, Any] = episode.transcript["prompt"]
    return prompt


def test_the_originals_per_difficulty_files(tmp_path: Path) -> None:
    for level in ("very_easy", "easy", "medium"):
        _write(tmp_path / f"library_{level}.json", _tasks(f"The {level} wording"))
    pattern = str(tmp_path / "library_{difficulty}.json")
    suite = WorkflowSuite(
        WorkflowOptions(task_file=pattern, task_types=TYPES, difficulties=["easy", "medium"], prompt_types=["baseline"])
    )
    for level in ("easy", "medium"):
        prompt = _prompt_of(suite, level)
        assert _task_line(prompt["user"]) == f"The {level} wording (simple_task)"
        assert prompt["description_source"] == SOURCE_TASK
    identity = suite.identity()
    assert "phrases_sha256" not in identity  # nothing is rendered: the phrase bank cannot change these prompts
    # Adding a level to the grid does not change the identity; editing a level's file does.
    wider = WorkflowSuite(
        WorkflowOptions(task_file=pattern, task_types=TYPES, difficulties=["very_easy", "easy", "medium"])
    )
    assert wider.identity() == identity
    _write(tmp_path / "library_easy.json", _tasks("Edited"))
    edited = WorkflowSuite(
        WorkflowOptions(task_file=pattern, task_types=TYPES, difficulties=["easy"], prompt_types=["baseline"])
    )
    assert edited.identity() != identity
    assert _task_line(_prompt_of(edited, "easy")["user"]) == "Edited (simple_task)"  # no stale cached copy


def test_a_missing_level_file_is_a_one_line_error(tmp_path: Path) -> None:
    _write(tmp_path / "library_easy.json", _tasks("Easy"))
    pattern = str(tmp_path / "library_{difficulty}.json")
    with pytest.raises(ValueError, match=r"^task_file: .*library_hard\.json not found \(the file of difficulty hard"):
        WorkflowSuite(WorkflowOptions(task_file=pattern, task_types=TYPES, difficulties=["easy", "hard"]))


def test_rendered_prompts_put_the_phrase_bank_into_the_identity() -> None:
    identity = WorkflowSuite(WorkflowOptions()).identity()
    assert len(identity["phrases_sha256"]) == 64
    assert _prompt_of(WorkflowSuite(WorkflowOptions(prompt_types=["baseline"])), "easy")["description_source"] == (
        SOURCE_RENDERED
    )
