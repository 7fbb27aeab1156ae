"""Where the suite's tasks come from: the shipped library, one task file, or the original's per-difficulty files.

`task_file` is None (the shipped `data/tasks.json`), a path, or a path containing `{difficulty}`: the original's layout
of one rewritten library per level (`task_library_enhanced_v3_{very_easy,...}.json`, reference §1.4), in which each
file's `description` is the task's text at that level. With a pattern, difficulty d samples from its own file (the
original reloaded the library whenever the difficulty changed, §1.7), and the file of every difficulty the grid uses
must exist. A single file serves every level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from fleetbench.data_files import read_data_file
from fleetbench_plugins.suites.workflow.model import DIFFICULTIES
from fleetbench_plugins.suites.workflow.registry import ToolRegistry
from fleetbench_plugins.suites.workflow.tasks import DEFAULT_TASKS_PATH, TaskLibrary, load_tasks

PLACEHOLDER = "{difficulty}"


@dataclass(frozen=True)
class TaskSource:
    """The task library of each difficulty level, and one digest of every file that can feed a level."""

    libraries: Mapping[str, TaskLibrary]
    digest: str

    def library(self, difficulty: str) -> TaskLibrary:
        """The library units of `difficulty` sample from; KeyError when no file serves that level."""
        return self.libraries[difficulty]


def _sha256(path: Path) -> str:
    return hashlib.sha256(read_data_file(path)).hexdigest()


def open_task_source(task_file: str | None, registry: ToolRegistry, difficulties: Sequence[str]) -> TaskSource:
    """The libraries for `task_file` (see the module docstring); ValueError naming the option and file on bad input.

    The digest covers every level's file that exists, not only the levels in `difficulties`, so adding a difficulty to
    the grid does not change the identity of units already run.
    """
    if task_file is None or PLACEHOLDER not in task_file:
        path = Path(task_file) if task_file is not None else DEFAULT_TASKS_PATH
        library = load_tasks(path, registry=registry)
        return TaskSource(MappingProxyType(dict.fromkeys(DIFFICULTIES, library)), _sha256(path))
    libraries: dict[str, TaskLibrary] = {}
    digests = []
    for level in DIFFICULTIES:
        path = Path(task_file.replace(PLACEHOLDER, level))
        if not path.is_file():
            if level in difficulties:
                raise ValueError(f"task_file: {path} not found (the file of difficulty {level}, which the grid uses)")
            digests.append(f"{level}:-")
            continue
        libraries[level] = load_tasks(path, registry=registry)
        digests.append(f"{level}:{_sha256(path)}")
    digest = hashlib.sha256("\n".join(digests).encode()).hexdigest()
    return TaskSource(MappingProxyType(libraries), digest)
