"""The `capitals` suite: "What is the capital of X?", one cell per region, scored against the shipped table.

Unit i of a region asks the i-th country of a seeded permutation of that region; a region holding fewer countries than
`run.instances` is refused before anything runs. `prompt_style` and `accept_aliases` change what a unit asks or how it
is scored, so they enter the unit key; `regions` only selects cells, so it does not. The table's digest is the suite's
identity: editing it re-runs its units. Its requests use protocol `capitals`, which the package's simulated player
speaks.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fleetbench.errors import ConfigError, InfraFailure, choices_text
from fleetbench.interfaces import Chat, EpisodeContext, Suite, option
from fleetbench.types import Cell, ChatMessage, Episode, MetricSpec, Outcome, Request, Role, Unit

from .data import Country, countries, digest, normalized

PROMPT_STYLES: dict[str, str] = {
    "direct": "What is the capital of {country}?",
    "quiz": "Quiz time! Name the capital city of {country}.",
}
SYSTEM_PROMPT = "You answer geography questions. Reply with the city name only."


@dataclasses.dataclass
class CapitalsOptions:
    """`regions`: which regions to ask about (empty: all); `prompt_style`: `direct` or `quiz`; `accept_aliases`:
    whether an alternative spelling (Kiev for Kyiv) counts as correct."""

    regions: list[str] = option(affects_result=False, default_factory=list, help="selects cells; empty = every region")
    prompt_style: str = option("direct", affects_result=True, help="direct | quiz: the question's wording")
    accept_aliases: bool = option(True, affects_result=True, help="accept alternative spellings of a capital")

    def __post_init__(self) -> None:
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(
                f"prompt_style: {self.prompt_style!r} is not valid; choices: {choices_text(PROMPT_STYLES)}"
            )
        known = sorted({c.region for c in countries()})
        unknown = [r for r in self.regions if r not in known]
        if unknown:
            raise ValueError(f"regions: {unknown[0]!r} is not a region; choices: {choices_text(known)}")


class CapitalsSuite(Suite):
    """Capitals of the world, by region."""

    name = "capitals"
    version = "1"
    Options = CapitalsOptions
    options: CapitalsOptions

    def _regions(self) -> list[str]:
        return list(self.options.regions) or sorted({c.region for c in countries()})

    def cells(self, base_model: str) -> Iterator[Cell]:
        for region in self._regions():
            yield Cell(self.name, base_model, (("region", region),))

    def factor_names(self) -> Sequence[str]:
        return ("region",)

    def identity(self) -> Mapping[str, Any]:
        return {"table": digest()}

    def instances(self, cell: Cell, requested: int) -> int:
        size = len(self._permutation(0, str(cell.factor("region"))))
        if requested > size:
            raise ConfigError(
                f"run.instances: {requested} units per cell, but region {cell.factor('region')!r} of suite "
                f"'capitals' holds {size} countries; ask at most {size}"
            )
        return requested

    def metrics(self) -> Sequence[MetricSpec]:
        return (
            MetricSpec("correct", "1 if the reply named the capital, else 0", "mean"),
            MetricSpec("prompt_tokens", "Prompt tokens sent by the unit's calls (mean per unit)", "mean"),
            MetricSpec("completion_tokens", "Completion tokens received by the unit's calls (mean per unit)", "mean"),
        )

    @functools.cache  # noqa: B019 - one suite per run; a handful of (seed, region) pairs
    def _permutation(self, seed: int, region: str) -> tuple[Country, ...]:
        chosen = [c for c in countries() if c.region == region]
        random.Random(f"{seed}:{region}").shuffle(chosen)
        return tuple(chosen)

    def country_for(self, unit: Unit) -> Country:
        """The country unit `unit` asks about."""
        return self._permutation(unit.seed, str(unit.cell.factor("region")))[unit.index]

    def question(self, country: Country) -> str:
        """The question asked about `country`, in the configured style."""
        return PROMPT_STYLES[self.options.prompt_style].format(country=country.country)

    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        country = self.country_for(unit)
        messages = (ChatMessage(Role.SYSTEM, SYSTEM_PROMPT), ChatMessage(Role.USER, self.question(country)))
        transcript: dict[str, Any] = {"country": country.country, "question": messages[1].content}
        try:
            completion = await chat(Request(messages, protocol=self.name))
        except InfraFailure as exc:
            transcript["infra"] = str(exc)
            return Episode(Outcome.INFRA_ERROR, task_id=country.country, infra_status=exc.status, transcript=transcript)
        correct = self.is_correct(completion.text, country)
        transcript.update(answer=completion.text, expected=country.capital, correct=correct)
        metrics = {
            "correct": float(correct),
            "prompt_tokens": float(completion.prompt_tokens),
            "completion_tokens": float(completion.completion_tokens),
        }
        outcome = Outcome.SUCCESS if correct else Outcome.FAILURE
        return Episode(outcome, metrics, task_id=country.country, turns=1, transcript=transcript)

    def is_correct(self, answer: str, country: Country) -> bool:
        """Whether `answer` names the country's capital (or, when accepted, one of its other spellings)."""
        accepted = [country.capital, *(country.aliases if self.options.accept_aliases else ())]
        return normalized(answer) in {normalized(name) for name in accepted}

    def render_transcript(self, transcript: Mapping[str, Any]) -> str:
        verdict = "correct" if transcript.get("correct") else "wrong"
        if "infra" in transcript:
            return f"Q: {transcript.get('question')}\n(not done: {transcript['infra']})"
        return (
            f"Q: {transcript.get('question')}\nA: {transcript.get('answer')}\n"
            f"expected {transcript.get('expected')}: {verdict}"
        )
