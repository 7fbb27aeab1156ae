"""Competence profiles of the simulated model: how often it knows the answer, and how it plays the tool protocol.

Profiles are data, so a researcher can tell at a glance what distinguishes `strong` from `weak`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How a simulated model behaves. Probabilities are per decision and drawn from a seeded RNG."""

    name: str
    qa_accuracy: float
    """Chance of answering a `jsonl` item correctly."""
    follows_plan: float = 0.95
    """Chance of taking the next step of a plan given in the prompt (optimal / flawed prompts)."""
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


PROFILES: dict[str, Profile] = {
    "strong": Profile("strong", qa_accuracy=0.92),
    "weak": Profile(
        "weak",
        qa_accuracy=0.55,
        follows_plan=0.7,
        picks_right_tool=0.55,
        retries_failed_tool=0.5,
        declares_completion=0.7,
        skips_search=0.2,
    ),
    "unclosed-tags": Profile("unclosed-tags", qa_accuracy=0.8, picks_right_tool=0.8, drops_closing_tags=True),
    "native-only": Profile("native-only", qa_accuracy=0.85, native_only=True),
}
