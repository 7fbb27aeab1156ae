"""The `jsonl` suite: a generic dataset of prompts with reference answers, scored exact / contains / regex.

Cells are the dataset's categories. The i-th unit of a cell asks the item at position i of a seeded permutation of that
category (position i modulo the category size under `items: cycle`). `items` says how many units a cell gets:

* `distinct` (default): `run.instances` distinct items; a category holding fewer is refused during validation;
* `all`: every item of the category once (`run.instances` is not used);
* `cycle`: `run.instances` units, going round the permutation again when the category runs out (deliberate repeats).

The unit at index i asks the same item in every mode, so `items` changes how many units a plan holds, never what a unit
asks: it is not part of the unit key, and a larger plan reuses the units a smaller one stored.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fleetbench.errors import ConfigError, InfraFailure, choices_text
from fleetbench.interfaces import Chat, EpisodeContext, Suite, option
from fleetbench.types import Cell, ChatMessage, Episode, MetricSpec, Outcome, Request, Role, Unit
from fleetbench_plugins.suites.jsonl.dataset import Dataset, Item, load_dataset
from fleetbench_plugins.suites.jsonl.scorers import SCORERS

ITEM_MODES = ("distinct", "all", "cycle")


@dataclasses.dataclass
class JsonlOptions:
    """`dataset`: `builtin` or a JSONL path; `scorer`: the default for rows that name none; `categories`: filter;
    `items`: how many units a category gets (`distinct`, `all`, `cycle`; see the module docstring)."""

    dataset: str = option("builtin", affects_result=False, help="its content digest enters the key, not its path")
    scorer: str = option("exact", affects_result=True)
    categories: list[str] = option(affects_result=False, default_factory=list, help="selects cells")
    system_prompt: str = option("Answer the question. Reply with the answer only.", affects_result=True)
    items: str = option(
        "distinct", affects_result=False, help="how many units a category gets; unit i asks the same item"
    )

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer: {self.scorer!r} is not valid; choices: {choices_text(SCORERS)}")
        if self.items not in ITEM_MODES:
            raise ValueError(f"items: {self.items!r} is not valid; choices: {choices_text(ITEM_MODES)}")


class JsonlSuite(Suite):
    """Prompt → reference dataset."""

    name = "jsonl"
    version = "1"
    Options = JsonlOptions

    def __init__(self, options: JsonlOptions) -> None:
        super().__init__(options)
        self._options = options
        self._dataset: Dataset = load_dataset(options.dataset, options.scorer)
        available = self._dataset.categories()
        unknown = [c for c in options.categories if c not in available]
        if unknown:
            raise ValueError(f"categories: {unknown[0]!r} is not in the dataset; choices: {choices_text(available)}")
        self._categories = list(options.categories) or available
        self._sizes = Counter(item.category for item in self._dataset.items)

    def cells(self, base_model: str) -> Iterator[Cell]:
        for category in self._categories:
            yield Cell(self.name, base_model, (("category", category),))

    def identity(self) -> Mapping[str, Any]:
        """The dataset's content digest (the options that change results are declared with `option`)."""
        return {"dataset": self._dataset.digest}

    def instances(self, cell: Cell, requested: int) -> int:
        """Units of a category: `run.instances`, or its size under `items: all`; more than it holds only by `cycle`."""
        category = str(cell.factor("category"))
        size = self._sizes[category]
        if self._options.items == "all":
            return size
        if self._options.items == "distinct" and requested > size:
            raise ConfigError(
                f"run.instances: {requested} units per cell, but category {category!r} of suite.dataset "
                f"{self._options.dataset!r} holds {size} items; ask at most {size}, every item once (suite.items=all), "
                "or repeat items on purpose (suite.items=cycle)"
            )
        return requested

    def factor_names(self) -> Sequence[str]:
        return ("category",)

    def metrics(self) -> Sequence[MetricSpec]:
        return (
            MetricSpec("correct", "1 if the answer matched the reference, else 0", "mean"),
            # The same statistic as every suite's: the mean per unit of the tokens its calls sent / received.
            MetricSpec("prompt_tokens", "Prompt tokens sent by the unit's calls (mean per unit)", "mean"),
            MetricSpec("completion_tokens", "Completion tokens received by the unit's calls (mean per unit)", "mean"),
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

    def render_transcript(self, transcript: Mapping[str, Any]) -> str:
        """The item, the chat and the verdict as readable text (what `fleetbench show` prints)."""
        lines = [f"item {transcript.get('item', '?')} (scorer {transcript.get('scorer', '?')})", ""]
        for message in transcript.get("messages") or []:
            if isinstance(message, Mapping):
                lines += [f"--- {message.get('role', '?')} ---", str(message.get("content", "")), ""]
        if "infra" in transcript:
            lines += ["--- not answered (infrastructure) ---", str(transcript["infra"])]
        else:
            verdict = "correct" if transcript.get("correct") else "wrong"
            lines += ["--- assistant ---", str(transcript.get("answer", "")), "",
                      f"reference: {transcript.get('reference', '')} -> {verdict}"]  # fmt: skip
        return "\n".join(lines)

    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        item = self.item_for(unit)
        messages = (
            ChatMessage(Role.SYSTEM, self._options.system_prompt),
            ChatMessage(Role.USER, item.prompt),
        )
        transcript: dict[str, Any] = {
            "item": item.item_id,
            "messages": [message.wire() for message in messages],
            "reference": item.reference,
            "scorer": item.scorer,
        }
        try:
            completion = await chat(Request(messages, protocol=self.name))
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
