"""The workflow suite's task library: loading the original's task-file format, validation and seeded sampling.

File format (the original's): `{"tasks": [...], "metadata": {...}}` (a bare list of tasks is accepted too). The two
generations of the original spelled some fields differently; both spellings are read:

- the id is `instance_id` (new) or `id` (old); a task with neither is an error (the original showed "unknown");
- inputs are `test_input` or `inputs`, expected outputs `expected_output` or `expected_outputs` (non-objects are kept
  under a "value" key);
- the legacy task type `file_processing` is remapped to `basic_task`, as the original did for 24% of its tasks; the
  original spelling is kept in `metadata["original_task_type"]`;
- an optional pre-generated `workflow` is either the `optimal_sequence` list itself or an object holding it;
- `description` is optional (a task without one has its wording rendered from its required tools), and an optional
  `descriptions` object maps difficulty levels to the task's own text at that level (the original's rewrites kept in
  one file; its per-difficulty files are read by `task_files`).

Required tools (and workflow tools) must exist in the tool registry; legacy aliases resolve to canonical names.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fleetbench.data_files import read_data_file
from fleetbench.limits import name_problem
from fleetbench_plugins.suites.workflow.files import read_json
from fleetbench_plugins.suites.workflow.model import DIFFICULTIES, TASK_TYPES, Task
from fleetbench_plugins.suites.workflow.registry import DATA_DIR, ToolRegistry, load_registry

DEFAULT_TASKS_PATH = DATA_DIR / "tasks.json"
LEGACY_TASK_TYPES = MappingProxyType({"file_processing": "basic_task"})
DEFAULT_COMPLEXITY = MappingProxyType(
    {
        "simple_task": "easy",
        "basic_task": "easy",
        "data_pipeline": "medium",
        "api_integration": "medium",
        "multi_stage_pipeline": "hard",
    }
)
# Original fields that Task has no slot for; they are kept in Task.metadata.
_KEPT_FIELDS = ("original_description", "difficulty_level", "constraints", "enhanced", "enhancement_timestamp")


class TaskLibrary:
    """An immutable set of tasks, grouped by type in file order, with seeded sampling."""

    def __init__(self, tasks: Sequence[Task], metadata: Mapping[str, Any] | None = None, source: str = "<memory>"):
        by_id: dict[str, Task] = {}
        for task in tasks:
            if task.task_id in by_id:
                raise ValueError(f"{source}: task '{task.task_id}': duplicate task id")
            by_id[task.task_id] = task
        self.source = source
        self.metadata: Mapping[str, Any] = MappingProxyType(dict(metadata or {}))
        self._by_id = MappingProxyType(by_id)
        self._by_type = MappingProxyType({kind: tuple(t for t in tasks if t.task_type == kind) for kind in TASK_TYPES})

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._by_id.values())

    @property
    def task_types(self) -> tuple[str, ...]:
        """The task types that have at least one task, in the canonical TASK_TYPES order."""
        return tuple(kind for kind, tasks in self._by_type.items() if tasks)

    def by_type(self, task_type: str) -> Sequence[Task]:
        """The tasks of `task_type` in file order (empty if none); ValueError for an unknown type name."""
        if task_type not in self._by_type:
            raise ValueError(f"unknown task type {task_type!r}; choices: {', '.join(TASK_TYPES)}")
        return self._by_type[task_type]

    def get(self, task_id: str) -> Task:
        """The task with this id; KeyError if there is none."""
        return self._by_id[task_id]

    def sample(self, task_type: str, seed: int, where: Callable[[Task], bool] | None = None) -> Task:
        """One task of `task_type` (among those `where` accepts, if given), chosen by `random.Random(seed)`: the same
        seed always gives the same task.

        Like the original, runs sample with replacement (each run has its own seed), but the choice is reproducible
        and the caller records the task id with the run.
        """
        pool = self.by_type(task_type)
        if where is not None:
            pool = tuple(task for task in pool if where(task))
        if not pool:
            qualified = "qualifying tasks" if where is not None else "tasks"
            raise ValueError(f"{self.source}: no {qualified} of type {task_type!r}")
        return random.Random(seed).choice(pool)

    def draw(self, task_type: str, count: int, seed: int, *, replace: bool = True) -> list[Task]:
        """`count` tasks of `task_type` from one seeded stream, with or without replacement."""
        pool = self.by_type(task_type)
        if not pool:
            raise ValueError(f"{self.source}: no tasks of type {task_type!r}")
        rng = random.Random(seed)
        if replace:
            return [rng.choice(pool) for _ in range(count)]
        if count > len(pool):
            raise ValueError(f"{self.source}: asked for {count} distinct {task_type} tasks, only {len(pool)} exist")
        return rng.sample(list(pool), count)


class _TaskWhere:
    """Builds one-line errors naming the file, the task and the field."""

    def __init__(self, source: str, task: str) -> None:
        self.source, self.task = source, task

    def error(self, field: str, problem: str) -> ValueError:
        return ValueError(f"{self.source}: task '{self.task}': field '{field}' {problem}")


def _task_id(raw: Mapping[str, Any], index: int, source: str) -> str:
    for key in ("instance_id", "id"):
        value = raw.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            problem = name_problem(str(value))
            if problem is not None:
                raise ValueError(f"{source}: task #{index}: field {key!r}: {problem}")
            return str(value)
    raise ValueError(f"{source}: task #{index}: field 'instance_id' (or 'id') is missing")


def _task_type(raw: Mapping[str, Any], where: _TaskWhere) -> str:
    value = raw.get("task_type")
    value = LEGACY_TASK_TYPES.get(value, value) if isinstance(value, str) else value
    if value not in TASK_TYPES:
        raise where.error("task_type", f"is {raw.get('task_type')!r}, not one of {', '.join(TASK_TYPES)}")
    return str(value)


def _tool_list(value: Any, field: str, where: _TaskWhere, registry: ToolRegistry) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise where.error(field, "must be a non-empty list of tool names")
    tools = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or name not in registry:
            raise where.error(f"{field}[{index}]", f"{name!r} is not a tool in the registry")
        tools.append(registry.resolve(name))
    return tuple(tools)


def _workflow(raw: Mapping[str, Any], where: _TaskWhere, registry: ToolRegistry) -> tuple[str, ...] | None:
    value = raw.get("workflow")
    if value is None:
        return None
    if isinstance(value, Mapping):
        if "optimal_sequence" not in value:
            raise where.error("workflow.optimal_sequence", "is missing")
        return _tool_list(value["optimal_sequence"], "workflow.optimal_sequence", where, registry)
    return _tool_list(value, "workflow", where, registry)


def _object(raw: Mapping[str, Any], keys: tuple[str, str]) -> dict[str, Any]:
    value: Any = next((raw[key] for key in keys if key in raw), {})
    return dict(value) if isinstance(value, Mapping) else {"value": value}


def _metadata(raw: Mapping[str, Any], where: _TaskWhere) -> dict[str, Any]:
    value = raw.get("metadata", {})
    if not isinstance(value, Mapping):
        raise where.error("metadata", "must be a JSON object")
    metadata = dict(value)
    metadata.update({key: raw[key] for key in _KEPT_FIELDS if key in raw})
    if raw.get("task_type") in LEGACY_TASK_TYPES:
        metadata["original_task_type"] = raw["task_type"]
    return metadata


def _description(raw: Mapping[str, Any], where: _TaskWhere) -> str:
    value = raw.get("description")
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise where.error("description", "must be a non-empty string (or left out to render one)")
    return value.strip()


def _descriptions(raw: Mapping[str, Any], where: _TaskWhere) -> dict[str, str]:
    value = raw.get("descriptions", {})
    if not isinstance(value, Mapping):
        raise where.error("descriptions", f"must map difficulty levels ({', '.join(DIFFICULTIES)}) to texts")
    for level, text in value.items():
        if level not in DIFFICULTIES:
            raise where.error(f"descriptions.{level}", f"is not a difficulty level; choices: {', '.join(DIFFICULTIES)}")
        if not isinstance(text, str) or not text.strip():
            raise where.error(f"descriptions.{level}", "must be a non-empty string")
    return {level: text.strip() for level, text in value.items()}


def parse_task(raw: Any, index: int, source: str, registry: ToolRegistry) -> Task:
    """One task record of a task file (see the module docstring for the accepted spellings)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: task #{index}: must be a JSON object")
    task_id = _task_id(raw, index, source)
    where = _TaskWhere(source, task_id)
    task_type = _task_type(raw, where)
    complexity = raw.get("complexity", DEFAULT_COMPLEXITY[task_type])
    if not isinstance(complexity, str):
        raise where.error("complexity", "must be a string")
    return Task(
        task_id=task_id,
        task_type=task_type,
        description=_description(raw, where),
        required_tools=_tool_list(raw.get("required_tools"), "required_tools", where, registry),
        complexity=complexity,
        inputs=_object(raw, ("test_input", "inputs")),
        expected_outputs=_object(raw, ("expected_output", "expected_outputs")),
        metadata=_metadata(raw, where),
        workflow=_workflow(raw, where, registry),
        descriptions=_descriptions(raw, where),
    )


def library_from_document(document: Any, source: str, registry: ToolRegistry) -> TaskLibrary:
    """A task library from an already-parsed task file."""
    raw_tasks = document.get("tasks") if isinstance(document, Mapping) else document
    if not isinstance(raw_tasks, list):
        raise ValueError(f"{source}: expected a JSON object with a 'tasks' list")
    metadata = document.get("metadata", {}) if isinstance(document, Mapping) else {}
    tasks = [parse_task(raw, index, source, registry) for index, raw in enumerate(raw_tasks)]
    return TaskLibrary(tasks, metadata if isinstance(metadata, Mapping) else {}, source)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, digest: str, registry: ToolRegistry) -> TaskLibrary:
    source = Path(path)
    return library_from_document(read_json(source, "task file"), source.name, registry)


def load_tasks(path: str | Path | None = None, *, registry: ToolRegistry | None = None) -> TaskLibrary:
    """Load (once per path, content and registry, then shared read-only) a task library; None = the shipped
    `data/tasks.json`.

    Tools are checked against `registry` (default: the shipped registry). Errors are one-line ValueErrors naming the
    file, the task id and the field. The cache is keyed by the file's content too, so an edited file is read again.
    """
    resolved = (Path(path) if path is not None else DEFAULT_TASKS_PATH).resolve()
    try:
        digest = hashlib.sha256(read_data_file(resolved)).hexdigest()
    except FileNotFoundError:
        raise ValueError(f"{resolved.name}: task file not found: {resolved}") from None
    except OSError as exc:
        raise ValueError(f"{resolved.name}: task file cannot be read: {resolved} ({exc.strerror})") from None
    return _load_cached(str(resolved), digest, registry if registry is not None else load_registry())
