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
# The model error categories: the original's eight (§4.6) minus `timeout_errors`. A model timeout is an
# infrastructure outcome here (request or episode timeout -> `infra_error`, reported as "not done" and re-run), so it is
# never a category of the model's errors; a tool that *returns* TIMEOUT is a simulated tool failure (other_errors).
INFRASTRUCTURE_CATEGORY = "timeout_errors"
ERROR_CATEGORIES = (
    "tool_call_format_errors",
    "max_turns_errors",
    "tool_selection_errors",
    "parameter_config_errors",
    "sequence_order_errors",
    "dependency_errors",
    "other_errors",
)


@dataclass(frozen=True)
class ToolParameter:
    """One declared parameter; `enum`, `minimum` and `maximum` are its optional constraints (the original's field)."""

    name: str
    type: str
    description: str
    required: bool = True
    default: Any = None
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


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
    """One task instance.

    `description` is the task file's own text ("" when the file gives none) and `descriptions` its texts per
    difficulty level; the prompt shows the level's text, else the description, else a wording rendered from the
    required tools (see `difficulty.task_description`).
    """

    task_id: str
    task_type: str
    description: str
    required_tools: tuple[str, ...]
    complexity: str = "medium"
    inputs: Mapping[str, Any] = field(default_factory=dict)
    expected_outputs: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    workflow: tuple[str, ...] | None = None
    descriptions: Mapping[str, str] = field(default_factory=dict)
