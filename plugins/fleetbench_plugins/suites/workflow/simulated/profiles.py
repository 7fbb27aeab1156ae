"""Competence profiles of the simulated workflow agent: how it plays the tool protocol.

Profiles are data, so a researcher can tell at a glance what distinguishes `strong` from `weak`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How a simulated model behaves. Probabilities are per decision and drawn from a seeded RNG."""

    name: str
    follows_plan: float = 0.95
    """Chance of taking the next step of a plan given in the prompt (optimal / flawed prompts). A step the task
    description itself names is followed more reliably (the description corroborates the plan)."""
    picks_right_tool: float = 0.9
    """Chance of choosing the tool the task needs among search results."""
    retries_failed_tool: float = 0.9
    """Chance of calling a failed tool again instead of moving on."""
    drops_closing_tags: bool = False
    """Emit `<tool_call>name` without `</tool_call>` (what the qwen serving stack did)."""
    native_only: bool = False
    """Only works with native function calling; in text mode it answers in prose."""
    declares_completion: float = 0.95
    """Chance of saying TASK_COMPLETED once it believes the work is done."""
    skips_search: float = 0.5
    """Chance of calling a tool it already knows by name without searching first."""
    checks_plan: float = 0.0
    """Chance of asking `<tool_info>` about a plan's first step before executing it (learns its dependencies)."""
    repairs_plan: float = 0.0
    """Chance of repairing an obviously broken plan step it has evidence about: a repeated step, a step whose known
    dependency comes later in the plan, or a plan tool the description contradicts."""
    uses_arguments: float = 0.3
    """Chance of passing the prompt's default parameters as JSON arguments with a call."""
    explains_first: float = 0.05
    """Chance that a chain-of-thought reply explains its reasoning but forgets the action tag."""


PROFILES: dict[str, Profile] = {
    "strong": Profile("strong", follows_plan=0.9, checks_plan=0.25, repairs_plan=0.35),
    "weak": Profile(
        "weak",
        follows_plan=0.7,
        picks_right_tool=0.55,
        retries_failed_tool=0.5,
        declares_completion=0.7,
        skips_search=0.2,
        checks_plan=0.05,
        repairs_plan=0.05,
        uses_arguments=0.1,
        explains_first=0.3,
    ),
    "unclosed-tags": Profile(
        "unclosed-tags",
        follows_plan=0.9,
        picks_right_tool=0.8,
        drops_closing_tags=True,
        checks_plan=0.2,
        repairs_plan=0.3,
    ),
    "native-only": Profile("native-only", follows_plan=0.9, native_only=True, checks_plan=0.25, repairs_plan=0.35),
}
