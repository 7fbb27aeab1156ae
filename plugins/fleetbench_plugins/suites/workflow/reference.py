"""Reference ("optimal") workflows and the per-step annotations rendered in a plan (§2.2, §12.4).

The original generated plans with a PPO policy whose scores were overridden so that the plan always came out as the
task's `required_tools` in order (400 of 400 stored logs). So the reference plan is the task's pre-generated workflow
when the task file has one, else `required_tools`; no model is involved.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from fleetbench_plugins.suites.workflow.model import Task
from fleetbench_plugins.suites.workflow.registry import ToolRegistry

HIGH_CONFIDENCE = 85
MEDIUM_CONFIDENCE = 70


@dataclass(frozen=True)
class StepAnnotation:
    """What a plan says about one step: why, what must run before it, what could replace it, how sure it is."""

    index: int  # 0-based position in the plan
    tool: str
    reason: str
    requires: tuple[str, ...]
    alternatives: tuple[str, ...]
    confidence: str  # High / Medium / Low
    confidence_pct: int


def reference_workflow(task: Task) -> tuple[str, ...]:
    """The reference plan: the task's pre-generated workflow if present, else its required tools in order."""
    return tuple(task.workflow) if task.workflow else tuple(task.required_tools)


def _stable(*parts: object) -> int:
    """A process-independent hash (built-in hash() of str is salted per process)."""
    return zlib.crc32(":".join(map(str, parts)).encode("utf-8"))


def confidence_level(pct: int) -> str:
    """High (>= 85%), Medium (>= 70%) or Low."""
    if pct >= HIGH_CONFIDENCE:
        return "High"
    return "Medium" if pct >= MEDIUM_CONFIDENCE else "Low"


def step_annotations(task: Task, registry: ToolRegistry, sequence: Sequence[str] | None = None) -> list[StepAnnotation]:
    """Annotations for each step of `sequence` (default: the reference plan of `task`).

    Confidence is a deterministic pseudo-percentage (65-97%) from the task id, position and tool. It deliberately does
    not depend on whether the plan is sound, so a flawed plan's annotations give no hint of the flaw.
    """
    steps = tuple(sequence) if sequence is not None else reference_workflow(task)
    annotations = []
    for index, name in enumerate(steps):
        tool = registry.get(name)
        peers = sorted(registry.same_category(name), key=lambda t: (_stable(task.task_id, name, t.name), t.name))
        pct = 65 + _stable(task.task_id, index, name) % 33
        annotations.append(
            StepAnnotation(
                index=index,
                tool=tool.name,
                reason=f"Matches the '{tool.operation}' operation needed here ({tool.category.replace('_', ' ')})",
                requires=tool.dependencies,
                alternatives=tuple(peer.name for peer in peers[:2]),
                confidence=confidence_level(pct),
                confidence_pct=pct,
            )
        )
    return annotations
