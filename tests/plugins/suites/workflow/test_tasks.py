"""The task library: the shipped tasks (§1.2, §1.4), loading the original's format, and seeded sampling (§1.7)."""

from __future__ import annotations

import json
import random
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from fleetbench_plugins.suites.workflow.model import TASK_TYPES
from fleetbench_plugins.suites.workflow.registry import ToolRegistry, load_registry
from fleetbench_plugins.suites.workflow.tasks import DEFAULT_TASKS_PATH, TaskLibrary, load_tasks

# task type -> (min, max, mean) required tools in the original's v3 library (§1.2)
LENGTHS = {
    "simple_task": (1, 3, 1.66),
    "basic_task": (1, 3, 1.76),
    "data_pipeline": (2, 5, 3.72),
    "api_integration": (2, 4, 2.85),
    "multi_stage_pipeline": (3, 7, 4.41),
}
COMPLEXITY = {
    "simple_task": "easy",
    "basic_task": "easy",
    "data_pipeline": "medium",
    "api_integration": "medium",
    "multi_stage_pipeline": "hard",
}


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return load_registry()


@pytest.fixture(scope="module")
def library() -> TaskLibrary:
    return load_tasks()


def test_every_type_has_at_least_100_tasks(library: TaskLibrary) -> None:
    assert library.task_types == TASK_TYPES
    for task_type in TASK_TYPES:
        assert len(library.by_type(task_type)) >= 100


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_lengths_follow_the_original_table(library: TaskLibrary, task_type: str) -> None:
    low, high, mean = LENGTHS[task_type]
    lengths = [len(task.required_tools) for task in library.by_type(task_type)]
    assert min(lengths) == low and max(lengths) == high
    assert statistics.mean(lengths) == pytest.approx(mean, abs=0.1)


def test_shipped_tasks_are_well_formed(library: TaskLibrary, registry: ToolRegistry) -> None:
    for task in library:
        assert re.fullmatch(rf"wf_{task.task_type}_\d{{4}}", task.task_id)
        assert task.complexity == COMPLEXITY[task.task_type]
        assert len(set(task.required_tools)) == len(task.required_tools)
        assert all(name in registry.names for name in task.required_tools)
        # Deliberately no description of their own: every difficulty level's wording is rendered from the tools.
        assert task.description == "" and task.descriptions == {}
        canonical = task.metadata["original_description"]  # kept where the original kept pre-rewrite text
        assert canonical.endswith(".") and task.metadata["subject"] in canonical
        assert not any(name in canonical for name in registry.names)
        assert task.inputs and task.expected_outputs and task.workflow is None


def test_dependencies_precede_dependents(library: TaskLibrary, registry: ToolRegistry) -> None:
    for task in library:
        for position, name in enumerate(task.required_tools):
            for dep in registry.get(name).dependencies:
                if dep in task.required_tools:
                    assert task.required_tools.index(dep) < position, task.task_id


def test_every_tool_is_used_somewhere(library: TaskLibrary, registry: ToolRegistry) -> None:
    used = {name for task in library for name in task.required_tools}
    assert used == set(registry.names)


def test_ids_are_unique_and_findable(library: TaskLibrary) -> None:
    assert len({task.task_id for task in library}) == len(library)
    assert library.get("wf_data_pipeline_0042").task_type == "data_pipeline"
    with pytest.raises(KeyError):
        library.get("wf_nope")
    with pytest.raises(ValueError, match="unknown task type"):
        library.by_type("file_processing")


def test_sample_is_seeded_and_reproducible(library: TaskLibrary) -> None:
    for task_type in TASK_TYPES:
        pool = library.by_type(task_type)
        for seed in range(20):
            chosen = library.sample(task_type, seed)
            assert chosen is library.sample(task_type, seed)
            assert chosen is random.Random(seed).choice(pool)
            assert chosen.task_type == task_type
    assert len({library.sample("data_pipeline", seed).task_id for seed in range(50)}) > 20


def test_sample_ignores_global_random_state(library: TaskLibrary) -> None:
    random.seed(1)
    first = library.sample("basic_task", 7)
    random.seed(2)
    assert library.sample("basic_task", 7) is first


def test_draw_with_and_without_replacement(library: TaskLibrary) -> None:
    distinct = library.draw("simple_task", 100, seed=3, replace=False)
    assert len({task.task_id for task in distinct}) == 100
    assert library.draw("simple_task", 5, seed=3) == library.draw("simple_task", 5, seed=3)
    with pytest.raises(ValueError, match="only 120 exist"):
        library.draw("simple_task", 500, seed=3, replace=False)


def test_library_is_cached(library: TaskLibrary) -> None:
    assert load_tasks(DEFAULT_TASKS_PATH) is library


# -- the original's format ------------------------------------------------------------------------------------------


def _write(tmp_path: Path, tasks: list[Any], name: str = "lib.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"tasks": tasks, "metadata": {"source": "test"}}), encoding="utf-8")
    return path


def _raw(**fields: Any) -> dict[str, Any]:
    return {
        "task_type": "data_pipeline",
        "description": "Do it.",
        "required_tools": ["file_operations_reader"],
        **fields,
    }


def test_original_format_spellings_are_read(tmp_path: Path) -> None:
    tasks = [
        _raw(instance_id="new_1", test_input={"source": "a.json"}, expected_output={"ok": True}),
        _raw(id="old_2", inputs={"x": 1}, expected_outputs={"y": 2}, task_type="file_processing"),
        _raw(id=3, workflow={"optimal_sequence": ["file_operations_reader_8", "utility_cache"]}),
        _raw(id="list_4", workflow=["utility_cache"], required_tools=["utility_cache_6"], difficulty_level="easy"),
    ]
    library = load_tasks(_write(tmp_path, tasks))
    new, old, numbered, listed = (library.get(key) for key in ("new_1", "old_2", "3", "list_4"))
    assert new.inputs == {"source": "a.json"} and new.expected_outputs == {"ok": True}
    assert old.inputs == {"x": 1} and old.expected_outputs == {"y": 2}
    assert old.task_type == "basic_task" and old.metadata["original_task_type"] == "file_processing"
    assert old.complexity == "easy"
    assert numbered.workflow == ("file_operations_reader", "utility_cache")
    assert listed.workflow == ("utility_cache",) and listed.required_tools == ("utility_cache",)
    assert listed.metadata["difficulty_level"] == "easy"
    assert library.metadata == {"source": "test"}
    assert [t.task_id for t in library.by_type("basic_task")] == ["old_2"]


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (_raw(), r"lib\.json: task #0: field 'instance_id' \(or 'id'\) is missing"),
        (_raw(id="t1", task_type="advanced_task"), r"lib\.json: task 't1': field 'task_type' is 'advanced_task'"),
        (
            _raw(id="t1", required_tools=["nope"]),
            r"lib\.json: task 't1': field 'required_tools\[0\]' 'nope' is not a tool",
        ),
        (_raw(id="t1", required_tools=[]), r"lib\.json: task 't1': field 'required_tools' must be a non-empty list"),
        (_raw(id="t1", description=""), r"lib\.json: task 't1': field 'description' must be a non-empty string"),
        (_raw(id="t1", description=3), r"lib\.json: task 't1': field 'description' must be a non-empty string"),
        (
            _raw(id="t1", descriptions={"trivial": "x"}),
            r"lib\.json: task 't1': field 'descriptions\.trivial' is not a difficulty level; choices: very_easy",
        ),
        (_raw(id="t1", descriptions={"hard": " "}), r"lib\.json: task 't1': field 'descriptions\.hard' must be a"),
        (_raw(id="t1", descriptions=["x"]), r"lib\.json: task 't1': field 'descriptions' must map difficulty levels"),
        (_raw(id="t1", workflow={"steps": []}), r"lib\.json: task 't1': field 'workflow\.optimal_sequence' is missing"),
        (_raw(id="t1", metadata=[1]), r"lib\.json: task 't1': field 'metadata' must be a JSON object"),
    ],
)
def test_invalid_tasks_name_file_task_and_field(tmp_path: Path, task: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        load_tasks(_write(tmp_path, [task]))


def test_duplicate_ids_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task 'a': duplicate task id"):
        load_tasks(_write(tmp_path, [_raw(id="a"), _raw(instance_id="a")], "dup.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("[", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^bad\.json: not valid JSON"):
        load_tasks(bad)
    # Each names the whole path: /dev/null was named only `null`; bytes that are not UTF-8 raised UnicodeDecodeError.
    # A device is not read at all (a FIFO would wait for a writer for ever).
    with pytest.raises(ValueError, match=r"^null: task file cannot be read: /dev/null \(not a regular file\)$"):
        load_tasks("/dev/null")
    empty = tmp_path / "empty.json"
    empty.write_text(" \n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^empty\.json: empty, not JSON: {empty}$"):
        load_tasks(empty)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'["\xe9"]')
    with pytest.raises(ValueError, match=rf"^latin\.json: not UTF-8 text \(byte 2\), so not JSON: {latin}$"):
        load_tasks(latin)
    shapeless = tmp_path / "shapeless.json"
    shapeless.write_text('{"items": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="expected a JSON object with a 'tasks' list"):
        load_tasks(shapeless)


def test_sampling_an_empty_type_is_an_error(tmp_path: Path) -> None:
    library = load_tasks(_write(tmp_path, [_raw(id="only")], "one.json"))
    assert library.task_types == ("data_pipeline",)
    assert library.by_type("simple_task") == ()
    with pytest.raises(ValueError, match="no tasks of type 'simple_task'"):
        library.sample("simple_task", 0)


def test_descriptions_are_optional_and_may_be_given_per_level(tmp_path: Path) -> None:
    tasks = [
        _raw(id="plain", description="  Move the ledger to the archive.  "),
        _raw(id="levels", descriptions={"very_easy": "Use file_operations_reader.", "hard": "Deal with the ledger."}),
        {"id": "bare", "task_type": "simple_task", "required_tools": ["utility_cache"]},
    ]
    library = load_tasks(_write(tmp_path, tasks, "described.json"))
    plain, levels, bare = (library.get(key) for key in ("plain", "levels", "bare"))
    assert (plain.description, plain.descriptions) == ("Move the ledger to the archive.", {})
    assert levels.description == "Do it." and levels.descriptions == {
        "very_easy": "Use file_operations_reader.", "hard": "Deal with the ledger."
    }  # fmt: skip
    assert (bare.description, bare.descriptions) == ("", {})


def test_sampling_can_be_restricted(library: TaskLibrary) -> None:
    multi = [library.sample("simple_task", seed, lambda t: len(t.required_tools) > 1) for seed in range(40)]
    assert all(len(task.required_tools) > 1 for task in multi)
    assert len({task.task_id for task in multi}) > 10
    with pytest.raises(ValueError, match="no qualifying tasks of type 'simple_task'"):
        library.sample("simple_task", 0, lambda t: False)
