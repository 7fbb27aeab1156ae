"""The `jsonl` suite: a generic dataset of prompts with reference answers, scored exact / contains / regex.

Cells are the dataset's categories. The i-th unit of a cell asks the item at position i of a seeded permutation of that
category, so `run.instances` equal to the category size asks every item once.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fleetbench.errors import InfraFailure, choices_text
from fleetbench.interfaces import Chat, EpisodeContext, Suite, option
from fleetbench.types import Cell, Episode, MetricSpec, Outcome, Unit
from fleetbench_plugins.suites.jsonl.dataset import Dataset, Item, load_dataset
from fleetbench_plugins.suites.jsonl.scorers import SCORERS


@dataclasses.dataclass
class JsonlOptions:
    """`dataset`: `builtin` or a JSONL path; `scorer`: the default for rows that name none; `categories`: filter."""

    dataset: str = option("builtin", affects_result=False, help="its content digest enters the key, not its path")
    scorer: str = option("exact", affects_result=True)
    categories: list[str] = option(affects_result=False, default_factory=list, help="selects cells")
    system_prompt: str = option("Answer the question. Reply with the answer only.", affects_result=True)

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer: {self.scorer!r} is not valid; choices: {choices_text(SCORERS)}")


class JsonlSuite(Suite):
    """Prompt → reference dataset."""

    name = "jsonl"
    version = "1"
    Options = JsonlOptions

    def __init__(self, options: JsonlOptions) -> None:
        self._options = options
        self._dataset: Dataset = load_dataset(options.dataset, options.scorer)
        available = self._dataset.categories()
        unknown = [c for c in options.categories if c not in available]
        if unknown:
            raise ValueError(f"categories: {unknown[0]!r} is not in the dataset; choices: {choices_text(available)}")
        self._categories = list(options.categories) or available

    def cells(self, base_model: str) -> Iterator[Cell]:
        for category in self._categories:
            yield Cell(self.name, base_model, (("category", category),))

    def identity(self) -> Mapping[str, Any]:
        """The dataset's content digest (the options that change results are declared with `option`)."""
        return {"dataset": self._dataset.digest}

    def factor_names(self) -> Sequence[str]:
        return ("category",)

    def metrics(self) -> Sequence[MetricSpec]:
        return (
            MetricSpec("correct", "1 if the answer matched the reference, else 0", "mean"),
            MetricSpec("prompt_tokens", "tokens sent", "sum"),
            MetricSpec("completion_tokens", "tokens received", "sum"),
        )

    def item_for(self, unit: Unit) -> Item:
        """The item a unit asks: position `index` of the category's permutation seeded by the run seed."""
        items = self._permutation(unit.seed, str(unit.cell.factor("category")))
        return items[unit.index % len(items)]

    @functools.cache  # noqa: B019 - one suite instance per run; a handful of (seed, category) pairs
    def _permutation(self, seed: int, category: str) -> tuple[Item, ...]:
        items = list(self._dataset.in_category(category))
        random.Random(f"{seed}:{category}").shuffle(items)
        return tuple(items)

    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        item = self.item_for(unit)
        messages = [
            {"role": "system", "content": self._options.system_prompt},
            {"role": "user", "content": item.prompt},
        ]
        transcript: dict[str, Any] = {
            "item": item.item_id,
            "messages": messages,
            "reference": item.reference,
            "scorer": item.scorer,
        }
        try:
            completion = await chat(messages)
        except InfraFailure as exc:
            transcript["infra"] = str(exc)
            return Episode(Outcome.INFRA_ERROR, task_id=item.item_id, infra_status=exc.status, transcript=transcript)
        correct = SCORERS[item.scorer](completion.text, item.reference)
        transcript.update(answer=completion.text, correct=correct)
        return Episode(
            outcome=Outcome.SUCCESS if correct else Outcome.FAILURE,
            metrics={
                "correct": float(correct),
                "prompt_tokens": float(completion.prompt_tokens),
                "completion_tokens": float(completion.completion_tokens),
            },
            task_id=item.item_id,
            turns=1,
            transcript=transcript,
        )
