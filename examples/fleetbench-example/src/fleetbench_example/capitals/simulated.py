"""The simulated model's side of the `capitals` suite (entry-point group `fleetbench.simulators`, name `capitals`).

The simulated provider hands this player every request whose protocol is `capitals`. It knows the table, as a
pretrained model knows geography, and answers correctly with its profile's accuracy; otherwise it names another
capital of the same region, a plausible mistake.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from fleetbench.interfaces import SimulatedPlayer
from fleetbench.types import Completion, Request, Role

from .data import countries

ACCURACY = {"strong": 0.9, "weak": 0.6, "unclosed-tags": 0.85, "native-only": 0.85}
"""Chance of naming the right capital, per profile of the shipped simulated models."""
DEFAULT_ACCURACY = 0.75
"""For a profile some other player defines: this player still answers, as an average model."""
ASKED = re.compile(r"capital (?:city )?of (.+?)[?.]\s*$")


class CapitalsPlayer(SimulatedPlayer):
    """Answers capitals questions with the accuracy of the model's profile."""

    profiles: ClassVar[tuple[str, ...]] = tuple(ACCURACY)

    def respond(self, request: Request, profile: str, params: Mapping[str, Any], rng: random.Random) -> Completion:
        question = next((m.content for m in reversed(request.messages) if m.role is Role.USER), "")
        text = self.answer(question, ACCURACY.get(profile, DEFAULT_ACCURACY), rng)
        words = sum(len(m.content.split()) for m in request.messages)
        return Completion(text, prompt_tokens=words, completion_tokens=len(text.split()), finish_reason="stop")

    @staticmethod
    def answer(question: str, accuracy: float, rng: random.Random) -> str:
        """The capital asked for (with probability `accuracy`), another capital of its region otherwise."""
        asked = ASKED.search(question)
        country = next((c for c in countries() if asked and c.country == asked.group(1)), None)
        if country is None:
            return "I am not sure which country you mean."
        if rng.random() < accuracy:
            return country.capital
        neighbours = sorted(c.capital for c in countries() if c.region == country.region and c != country)
        return rng.choice(neighbours)
