"""Description difficulty (§1.5): the five wordings are deterministic and really differ, in the table's direction."""

from __future__ import annotations

import dataclasses
import random
import re
import statistics

import pytest

from fleetbench_plugins.suites.workflow.difficulty import (
    DIFFICULTY_PARAMETERS,
    TIERS,
    phrase_bank,
    render_description,
)
from fleetbench_plugins.suites.workflow.model import DIFFICULTIES, Task, Tool
from fleetbench_plugins.suites.workflow.registry import ToolRegistry, load_registry
from fleetbench_plugins.suites.workflow.tasks import TaskLibrary, load_tasks


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return load_registry()


@pytest.fixture(scope="module")
def library() -> TaskLibrary:
    return load_tasks()


@pytest.fixture(scope="module")
def rendered(library: TaskLibrary, registry: ToolRegistry) -> dict[str, dict[str, str]]:
    """task id -> level -> description, for the whole shipped library."""
    return {task.task_id: {d: render_description(task, d, registry) for d in DIFFICULTIES} for task in library}


def _named_share(task: Task, text: str) -> float:
    return sum(re.search(rf"\b{name}\b", text) is not None for name in task.required_tools) / len(task.required_tools)


def _has_keyword(text: str, operation: str) -> bool:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return any(word in words for word in phrase_bank().keywords(operation))


def test_parameters_are_the_original_table() -> None:
    table = {level: dataclasses.astuple(params)[1:] for level, params in DIFFICULTY_PARAMETERS.items()}
    assert table == {
        "very_easy": (0.0, 0.0, 1.0, 15, 0.0, False, True, 0.3),
        "easy": (0.2, 0.1, 0.8, 20, 0.1, False, True, 0.5),
        "medium": (0.5, 0.3, 0.5, 25, 0.3, False, False, 0.7),
        "hard": (0.7, 0.6, 0.3, 30, 0.5, True, False, 0.8),
        "very_hard": (0.9, 0.8, 0.1, 35, 0.7, True, False, 0.9),
    }
    assert tuple(DIFFICULTY_PARAMETERS) == DIFFICULTIES
    with pytest.raises(dataclasses.FrozenInstanceError):
        DIFFICULTY_PARAMETERS["easy"].target_words = 3  # type: ignore[misc]


def test_share_of_named_tools_falls_with_difficulty(library: TaskLibrary, rendered: dict[str, dict[str, str]]) -> None:
    means = {}
    for level in DIFFICULTIES:
        shares = [_named_share(task, rendered[task.task_id][level]) for task in library]
        means[level] = statistics.mean(shares)
    for task in library:
        per_level = [_named_share(task, rendered[task.task_id][level]) for level in DIFFICULTIES]
        assert per_level == sorted(per_level, reverse=True), task.task_id
        assert per_level[0] == 1.0
    assert means["very_easy"] == 1.0 > means["easy"] > means["medium"]
    assert means["medium"] == means["hard"] == means["very_hard"] == 0.0


def test_easy_names_most_tools(library: TaskLibrary, rendered: dict[str, dict[str, str]]) -> None:
    for task in library:
        share = _named_share(task, rendered[task.task_id]["easy"])
        assert share >= 0.5 and (share < 1.0 or len(task.required_tools) == 1), task.task_id


def test_word_counts_rise_with_difficulty(library: TaskLibrary, rendered: dict[str, dict[str, str]]) -> None:
    for task in library:
        counts = [len(rendered[task.task_id][level].split()) for level in DIFFICULTIES]
        assert counts == sorted(set(counts)), (task.task_id, counts)
        for level, count in zip(DIFFICULTIES, counts, strict=True):
            assert count >= DIFFICULTY_PARAMETERS[level].target_words
    single = [t for t in library if len(t.required_tools) == 1]
    for level in DIFFICULTIES:  # short tasks stay near the table's target lengths
        mean = statistics.mean(len(rendered[t.task_id][level].split()) for t in single)
        assert mean <= DIFFICULTY_PARAMETERS[level].target_words + 15


def test_direct_keywords_only_at_easy_levels(
    library: TaskLibrary, registry: ToolRegistry, rendered: dict[str, dict[str, str]]
) -> None:
    for task in library:
        operations = {registry.get(name).operation for name in task.required_tools}
        for level in DIFFICULTIES:
            text = rendered[task.task_id][level]
            hits = {op for op in operations if _has_keyword(text, op)}
            if DIFFICULTY_PARAMETERS[level].direct_keywords:
                assert hits == operations, (task.task_id, level)
            else:
                assert hits == set(), (task.task_id, level, hits)


def test_hard_levels_carry_misleading_terms(
    library: TaskLibrary, registry: ToolRegistry, rendered: dict[str, dict[str, str]]
) -> None:
    bank = phrase_bank()
    for task in library:
        needed = {registry.get(name).operation for name in task.required_tools}
        decoys = [bank.term(tool) for tool in registry if tool.operation not in needed]
        counts = {level: sum(term in rendered[task.task_id][level] for term in decoys) for level in DIFFICULTIES}
        assert counts["hard"] >= 1 and counts["very_hard"] >= 2, task.task_id
        assert counts["very_easy"] == counts["easy"] == counts["medium"] == 0, task.task_id


def test_levels_all_differ(library: TaskLibrary, rendered: dict[str, dict[str, str]]) -> None:
    for task in library:
        assert len(set(rendered[task.task_id].values())) == len(DIFFICULTIES)


def test_rendering_is_deterministic_and_ignores_global_random(library: TaskLibrary, registry: ToolRegistry) -> None:
    task = library.get("wf_multi_stage_pipeline_0000")
    random.seed(1)
    first = [render_description(task, level, registry) for level in DIFFICULTIES]
    random.seed(99)
    assert [render_description(task, level, registry) for level in DIFFICULTIES] == first
    other = library.get("wf_multi_stage_pipeline_0001")
    assert render_description(other, "hard", registry) != first[3]


def test_very_easy_wording_example(library: TaskLibrary, registry: ToolRegistry) -> None:
    task = library.get("wf_simple_task_0035")
    assert render_description(task, "very_easy", registry).startswith("Use file_operations_reader to read the "), (
        "very_easy names each tool with its direct verb"
    )


def test_phrase_bank_covers_every_shipped_tool(registry: ToolRegistry) -> None:
    bank = phrase_bank()
    for tool in registry:
        phrases = bank.tools[tool.name]
        assert all("{obj}" in phrases[tier] for tier in TIERS), tool.name
        assert _has_keyword(phrases["direct"], tool.operation), tool.name
        for tier in ("purpose", "business", "abstract"):
            assert not _has_keyword(phrases[tier], tool.operation), (tool.name, tier)
        assert phrases["term"]


def test_tools_without_phrases_get_generic_wording(registry: ToolRegistry) -> None:
    custom = ToolRegistry([*registry, Tool("custom_widget", "custom", "widget", "Makes widgets")])
    task = Task("t1", "simple_task", "Make widgets.", ("custom_widget",))
    assert "custom_widget" in render_description(task, "very_easy", custom)
    assert "custom" in render_description(task, "medium", custom)
    assert "custom_widget" not in render_description(task, "very_hard", custom)


def test_unknown_level_is_rejected(library: TaskLibrary, registry: ToolRegistry) -> None:
    with pytest.raises(ValueError, match="difficulty 'trivial'"):
        render_description(library.get("wf_basic_task_0000"), "trivial", registry)
