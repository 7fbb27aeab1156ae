"""The simulated model as an error-classification judge: reads a transcript, answers the JSON verdict asked for.

It reasons by keywords, as a cheap judge model might, and errs with the probability its profile sets, so runs with
`suite.classifier=llm` exercise the whole judge path (its lanes, calls, parsing and fallbacks) without a real API.
"""

from __future__ import annotations

import json
import random
import re

from fleetbench_plugins.suites.workflow.simulated.profiles import Profile

_CLUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tool_call_format_errors", re.compile(r"format (error|help)|no tool calls|could not parse", re.IGNORECASE)),
    ("max_turns_errors", re.compile(r"max(imum)? turns|ran out of turns|turn limit", re.IGNORECASE)),
    ("dependency_errors", re.compile(r"dependenc|prerequisite", re.IGNORECASE)),
    ("parameter_config_errors", re.compile(r"INVALID_INPUT|PERMISSION_DENIED|parameter", re.IGNORECASE)),
    ("sequence_order_errors", re.compile(r"wrong order|out of order|sequence", re.IGNORECASE)),
    ("tool_selection_errors", re.compile(r"wrong tool|TOOL_NOT_FOUND|instead of", re.IGNORECASE)),
)
_CATEGORIES = (*(name for name, _ in _CLUES), "other_errors")


def verdict(transcript: str, profile: Profile, rng: random.Random) -> str:
    """A JSON verdict: the first category whose clue appears, or a random one when the judge errs."""
    category = next((name for name, clue in _CLUES if clue.search(transcript)), "other_errors")
    confidence = round(0.6 + 0.35 * rng.random(), 2)
    if rng.random() > profile.picks_right_tool:
        category = rng.choice(_CATEGORIES)
        confidence = round(0.3 + 0.3 * rng.random(), 2)
    reasoning = f"The transcript points to {category.replace('_', ' ')}."
    return json.dumps({"error_type": category, "reasoning": reasoning, "confidence": confidence})
