"""The simulated model's side of the `jsonl` suite: it answers the shipped dataset's questions.

Registered as the `jsonl` player of the `simulated` provider (entry-point group `fleetbench.simulators`). It really
solves the small task families the built-in dataset holds (arithmetic, string operations, counting, sorting) and, with
the probability its profile (or the model's `qa_accuracy`) sets, answers wrongly in a plausible way. Prompts it cannot
parse get a polite non-answer, which scores as wrong, as a real model's would.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from fleetbench.interfaces import SimulatedPlayer
from fleetbench.types import Completion, Request, Role

ACCURACY = {"strong": 0.92, "weak": 0.55, "unclosed-tags": 0.8, "native-only": 0.85}
"""Chance of a correct answer per competence profile (a model's `qa_accuracy` param overrides it)."""


class JsonlPlayer(SimulatedPlayer):
    """Answers the last user message as a model of the profile's accuracy would."""

    profiles: ClassVar[tuple[str, ...]] = tuple(ACCURACY)

    def respond(self, request: Request, profile: str, params: Mapping[str, Any], rng: random.Random) -> Completion:
        prompt = next((m.content for m in reversed(request.messages) if m.role is Role.USER), "")
        accuracy = params.get("qa_accuracy")
        text = answer(prompt, ACCURACY[profile] if accuracy is None else float(accuracy), rng)
        words = sum(len(m.content.split()) for m in request.messages)
        return Completion(text=text, prompt_tokens=words, completion_tokens=len(text.split()), finish_reason="stop")


Solver = Callable[[re.Match[str]], str]

_SOLVERS: list[tuple[re.Pattern[str], Solver]] = [
    (re.compile(r"What is (-?\d+) \+ (-?\d+)\?"), lambda m: str(int(m[1]) + int(m[2]))),
    (re.compile(r"What is (-?\d+) - (-?\d+)\?"), lambda m: str(int(m[1]) - int(m[2]))),
    (re.compile(r"What is (-?\d+) \* (-?\d+)\?"), lambda m: str(int(m[1]) * int(m[2]))),
    (re.compile(r"Reverse the letters of '([a-z]+)'"), lambda m: m[1][::-1]),
    (re.compile(r"Write '([a-z ]+)' in upper case"), lambda m: m[1].upper()),
    (re.compile(r"How many letters are in '([a-z]+)'\?"), lambda m: str(len(m[1]))),
    (re.compile(r"How many times does '([a-z])' occur in '([a-z]+)'\?"), lambda m: str(m[2].count(m[1]))),
    (
        re.compile(r"Sort these numbers ascending: ([\d, ]+)\."),
        lambda m: ", ".join(sorted(m[1].split(", "), key=int)),
    ),
    (re.compile(r"Which is larger, (\d+) or (\d+)\?"), lambda m: str(max(int(m[1]), int(m[2])))),
]


def solve(prompt: str) -> str | None:
    """The correct answer to a prompt of a known family, or None."""
    for pattern, solver in _SOLVERS:
        match = pattern.search(prompt)
        if match:
            return solver(match)
    return None


def answer(prompt: str, accuracy: float, rng: random.Random) -> str:
    """Answer like a model of the given accuracy: correct with that probability, plausibly wrong otherwise."""
    truth = solve(prompt)
    if truth is None:
        return "I am not sure how to answer that."
    if rng.random() < accuracy:
        return truth
    return _plausible_mistake(truth, rng)


def _plausible_mistake(truth: str, rng: random.Random) -> str:
    if re.fullmatch(r"-?\d+", truth):
        return str(int(truth) + rng.choice([-10, -1, 1, 2, 10]))
    if ", " in truth:
        parts = truth.split(", ")
        rng.shuffle(parts)
        return ", ".join(parts) if parts != truth.split(", ") else ", ".join(reversed(parts))
    if len(truth) > 1:
        letters = list(truth)
        i = rng.randrange(len(letters) - 1)
        letters[i], letters[i + 1] = letters[i + 1], letters[i]
        wrong = "".join(letters)
        return wrong if wrong != truth else truth + truth[-1]
    return truth + "?"
