"""The workflow suite's shared vocabulary: tools, tasks, and the names of every experimental condition.

Every other module of the suite builds on these frozen types; none of them carries behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TASK_TYPES = ("simple_task", "basic_task", "data_pipeline", "api_integration", "multi_stage_pipeline")
DIFFICULTIES = ("very_easy", "easy", "medium", "hard", "very_hard")
FLAW_TYPES = (
    "sequence_disorder",
    "tool_misuse",
    "parameter_error",
    "missing_step",
    "redundant_operations",
    "logical_inconsistency",
    "semantic_drift",
)
PROMPT_TYPES = ("baseline", "optimal", "cot", *(f"flawed_{flaw}" for flaw in FLAW_TYPES))
SEVERITIES = ("light", "medium", "severe")
TOOL_CATEGORIES = ("file_operations", "data_processing", "network", "computation", "integration", "utility")
ERROR_CATEGORIES = (
    "tool_call_format_errors",
    "timeout_errors",
    "max_turns_errors",
    "tool_selection_errors",
    "parameter_config_errors",
    "sequence_order_errors",
    "dependency_errors",
    "other_errors",
)


@dataclass(frozen=True)
class ToolParameter:
    name: str
    type: str
    description: str
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class ToolError:
    code: str
    description: str


@dataclass(frozen=True)
class Tool:
    """One simulated MCP-style tool, named `{category}_{operation}`."""

    name: str
    category: str
    operation: str
    description: str
    parameters: tuple[ToolParameter, ...] = ()
    returns: tuple[tuple[str, str, str], ...] = ()
    errors: tuple[ToolError, ...] = ()
    dependencies: tuple[str, ...] = ()
    usage_keywords: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Task:
    """One task instance. `description` is the canonical (unrendered) wording; difficulty renders it."""

    task_id: str
    task_type: str
    description: str
    required_tools: tuple[str, ...]
    complexity: str = "medium"
    inputs: Mapping[str, Any] = field(default_factory=dict)
    expected_outputs: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    workflow: tuple[str, ...] | None = None
