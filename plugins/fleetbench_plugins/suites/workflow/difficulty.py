"""Description difficulty (§1.5): how abstractly a task is worded, orthogonal to the task type's complexity.

The text a prompt shows (`task_description`) is the task file's own wording whenever it has one: its text for the level
(`descriptions[level]`, or the level's file of the original's per-difficulty libraries), else its `description`. Only a
task with neither is worded here. The original rewrote each task once per level with gpt-4o-mini; this module renders
the five wordings from the task's required tools and the hand-written phrase bank `data/phrases.json`,
deterministically (seeded by task id and level, no global random state), so the levels are reproducible and provably
different. The shipped tasks carry no description on purpose, so all five levels are rendered for them:

- very_easy names every required tool, in order, with its direct keyword ("use X to read ...");
- easy names most tools and keeps the direct keywords;
- medium names no tool, describing each step by purpose plus its category ("(a file operation)");
- hard uses business language and one misleading term (a keyword of a tool the task does NOT need);
- very_hard lists abstract outcomes as noun phrases, with two misleading terms and vague hedges.

Word counts rise with the level: each level is padded with level-specific sentences to at least its target word count
and to more words than the level below it for the same task.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from fleetbench_plugins.suites.workflow.model import DIFFICULTIES, Task, Tool
from fleetbench_plugins.suites.workflow.registry import DATA_DIR, ToolRegistry

PHRASES_PATH = DATA_DIR / "phrases.json"
TIERS = ("direct", "purpose", "business", "abstract")


@dataclass(frozen=True)
class DifficultyParameters:
    """One row of the §1.5 table; `llm_temperature` is what the original's rewriter used (recorded, not used here)."""

    level: str
    abstraction: float
    business_ratio: float
    tool_hint_clarity: float
    target_words: int
    ambiguity: float
    misleading_terms: bool
    direct_keywords: bool
    llm_temperature: float


DIFFICULTY_PARAMETERS: Mapping[str, DifficultyParameters] = MappingProxyType(
    {
        "very_easy": DifficultyParameters("very_easy", 0.0, 0.0, 1.0, 15, 0.0, False, True, 0.3),
        "easy": DifficultyParameters("easy", 0.2, 0.1, 0.8, 20, 0.1, False, True, 0.5),
        "medium": DifficultyParameters("medium", 0.5, 0.3, 0.5, 25, 0.3, False, False, 0.7),
        "hard": DifficultyParameters("hard", 0.7, 0.6, 0.3, 30, 0.5, True, False, 0.8),
        "very_hard": DifficultyParameters("very_hard", 0.9, 0.8, 0.1, 35, 0.7, True, False, 0.9),
    }
)

# Padding sentences per level; none of them may contain a direct keyword (tests check this).
_FILLERS: Mapping[str, tuple[str, ...]] = {
    "very_easy": ("Use the default parameters.", "Run each tool once.", "Stop after the last step."),
    "easy": (
        "Use the default input and output paths.",
        "Each step should run once, in order.",
        "Report back when everything is finished.",
    ),
    "medium": (
        "Keep the default locations for input and output.",
        "Each stage should complete before the next one starts.",
        "The result should be usable by the next team without rework.",
        "Nothing beyond these stages is needed.",
    ),
    "hard": (
        "Timelines are tight, so avoid unnecessary detours.",
        "The outcome feeds a quarterly business review.",
        "Assume the usual locations for inputs and outputs.",
        "Leadership cares more about reliability than speed here.",
        "Expect the usual scrutiny from the business owners.",
    ),
    "very_hard": (
        "Details beyond this are deliberately left open.",
        "Use judgement wherever the brief is vague.",
        "The exact sequence is yours to determine.",
        "Expect the usual demands around reliability and auditability.",
        "Not every detail has been spelled out, and some of it may be beside the point.",
        "Treat the usual locations for inputs and outputs as a given.",
    ),
}
_TEAMS = ("The operations team", "Finance", "The analytics group", "A partner-facing squad", "The platform team")
_MISLEADING_HARD = (
    "Some stakeholders loosely call this the {term} job.",
    "Internally the request is filed under {term}.",
    "The ticket was originally labelled {term}.",
)
_MISLEADING_VERY_HARD = (
    "People upstream keep calling it the {term} effort, though that label is loose.",
    "There may be an angle involving {term} as well.",
    "Someone mentioned {term} in passing.",
)


@dataclass(frozen=True)
class PhraseBank:
    """The wording for each tool at each tier, each operation's direct keywords and each category's phrase."""

    tools: Mapping[str, Mapping[str, str]]
    operations: Mapping[str, tuple[str, ...]]
    categories: Mapping[str, str]

    def phrase(self, tool: Tool, tier: str, obj: str) -> str:
        """`tool`'s step at `tier` about `obj`; generic wording from the category for tools without phrases."""
        known = self.tools.get(tool.name)
        if known is not None:
            return known[tier].format(obj=obj)
        area = tool.category.replace("_", " ")
        generic = {
            "direct": f"run the {tool.operation} on {obj}",
            "purpose": f"handle {obj} in the {area} stage",
            "business": f"take care of the {area} side of {obj}",
            "abstract": f"the {area} side of {obj}",
        }
        return generic[tier]

    def term(self, tool: Tool) -> str:
        """The misleading term naming `tool`'s job, used when the task does not need `tool`."""
        known = self.tools.get(tool.name)
        return known["term"] if known is not None else f"{tool.operation} work"

    def keywords(self, operation: str) -> tuple[str, ...]:
        """The word forms that name `operation` directly (e.g. read, reads, reading, reader)."""
        return self.operations.get(operation, (operation.lower(),))

    def category_phrase(self, category: str) -> str:
        """The purpose-level hint for a category, e.g. "a file operation"."""
        return self.categories.get(category, f"a {category.replace('_', ' ')} step")


@functools.lru_cache(maxsize=4)
def phrase_bank(path: str | None = None) -> PhraseBank:
    """The phrase bank (default `data/phrases.json`), loaded once."""
    document = json.loads(Path(path or PHRASES_PATH).read_text(encoding="utf-8"))
    return PhraseBank(
        tools=MappingProxyType({name: MappingProxyType(dict(p)) for name, p in document["tools"].items()}),
        operations=MappingProxyType({op: tuple(words) for op, words in document["operations"].items()}),
        categories=MappingProxyType(dict(document["categories"])),
    )


def _join(steps: Sequence[str], last: str = "and finally") -> str:
    if len(steps) <= 1:
        return "".join(steps)
    if len(steps) == 2:
        return f"{steps[0]}, then {steps[1]}"
    return ", then ".join(steps[:-1]) + f", {last} {steps[-1]}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _misleading_terms(tools: Sequence[Tool], registry: ToolRegistry, rng: random.Random, count: int) -> list[str]:
    """Terms of tools whose operation the task does not need: they point the reader at the wrong tool."""
    bank = phrase_bank()
    needed = {tool.operation for tool in tools}
    candidates = sorted(t.name for t in registry if t.operation not in needed)
    chosen = rng.sample(candidates, min(count, len(candidates)))
    return [bank.term(registry.get(name)) for name in chosen]


@dataclass(frozen=True)
class _Context:
    tools: tuple[Tool, ...]
    subject: str
    registry: ToolRegistry
    rng: random.Random


def _very_easy(ctx: _Context) -> str:
    bank = phrase_bank()
    objs = [f"the {ctx.subject}"] + ["them"] * len(ctx.tools)
    steps = [f"use {t.name} to {bank.phrase(t, 'direct', objs[i])}" for i, t in enumerate(ctx.tools)]
    return _sentence(_join(steps, "and finally"))


def _easy(ctx: _Context) -> str:
    bank, n = phrase_bank(), len(ctx.tools)
    named_count = 1 if n == 1 else n - max(1, n // 4)
    named = set(ctx.rng.sample(range(n), named_count))
    steps = [
        bank.phrase(t, "direct", "them") + (f" with {t.name}" if i in named else "") for i, t in enumerate(ctx.tools)
    ]
    return f"Process the {ctx.subject}: {_join(steps)}."


def _medium(ctx: _Context) -> str:
    bank = phrase_bank()
    steps = [f"{bank.phrase(t, 'purpose', 'them')} ({bank.category_phrase(t.category)})" for t in ctx.tools]
    if len(steps) == 1:
        return f"This job concerns the {ctx.subject}. The task is to {steps[0]}."
    middle = ["next", "after that", "then"]
    parts = [f"first, {steps[0]}"]
    parts += [f"{middle[(i - 1) % len(middle)]}, {s}" for i, s in enumerate(steps[1:-1], 1)]
    parts.append(f"finally, {steps[-1]}")
    return f"This job concerns the {ctx.subject}. " + _sentence("; ".join(parts))


def _hard(ctx: _Context) -> str:
    bank = phrase_bank()
    steps = [bank.phrase(t, "business", "them") for t in ctx.tools]
    team = ctx.rng.choice(_TEAMS)
    text = f"{team} needs the {ctx.subject} handled end to end: {_join(steps, 'and then')}."
    terms = _misleading_terms(ctx.tools, ctx.registry, ctx.rng, 1)
    return " ".join([text, *(ctx.rng.choice(_MISLEADING_HARD).format(term=term) for term in terms)])


def _very_hard(ctx: _Context) -> str:
    bank = phrase_bank()
    objs = ("the material", "it")
    items = [bank.phrase(t, "abstract", objs[i % 2]) for i, t in enumerate(ctx.tools)]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"
    text = f"What matters is an outcome for the {ctx.subject} that covers {listed}, ideally in a sensible order."
    terms = _misleading_terms(ctx.tools, ctx.registry, ctx.rng, 2)
    templates = ctx.rng.sample(_MISLEADING_VERY_HARD, len(terms))
    return " ".join([text, *(template.format(term=term) for template, term in zip(templates, terms, strict=True))])


_RENDERERS: Mapping[str, Callable[[_Context], str]] = {
    "very_easy": _very_easy,
    "easy": _easy,
    "medium": _medium,
    "hard": _hard,
    "very_hard": _very_hard,
}


def _pad(text: str, level: str, minimum_words: int, rng: random.Random) -> str:
    fillers = list(_FILLERS[level])
    rng.shuffle(fillers)
    for filler in fillers:
        if len(text.split()) >= minimum_words:
            break
        text = f"{text} {filler}"
    return text


def _subject(task: Task) -> str:
    subject = task.metadata.get("subject")
    return subject if isinstance(subject, str) and subject else "input data"


SOURCE_LEVEL = "task_level"
SOURCE_TASK = "task"
SOURCE_RENDERED = "rendered"


@dataclass(frozen=True)
class TaskText:
    """The description a prompt shows, and where it came from: the task's text for the level (`task_level`), its one
    description (`task`), or `rendered` from its required tools."""

    text: str
    source: str


def description_source(task: Task, difficulty: str) -> str:
    """Where `task_description` takes the text for `difficulty` from, without rendering anything."""
    _check_level(difficulty)
    if task.descriptions.get(difficulty):
        return SOURCE_LEVEL
    return SOURCE_TASK if task.description else SOURCE_RENDERED


def task_description(task: Task, difficulty: str, registry: ToolRegistry) -> TaskText:
    """The description shown at `difficulty`: the task's own text for the level, else its description, else rendered.

    A task file with a single description shows it at every level: the difficulty factor then only labels the cell.
    """
    source = description_source(task, difficulty)
    if source == SOURCE_LEVEL:
        return TaskText(task.descriptions[difficulty], source)
    if source == SOURCE_TASK:
        return TaskText(task.description, source)
    return TaskText(render_description(task, difficulty, registry), source)


def _check_level(difficulty: str) -> None:
    if difficulty not in DIFFICULTY_PARAMETERS:
        raise ValueError(f"difficulty {difficulty!r} is not one of {', '.join(DIFFICULTIES)}")


def render_description(task: Task, difficulty: str, registry: ToolRegistry) -> str:
    """The task worded at `difficulty` from its required tools (deterministic: seeded from the task id and the level),
    whatever texts the task file gives."""
    _check_level(difficulty)
    tools = tuple(registry.get(name) for name in task.required_tools)
    previous_words = 0
    text = ""
    for level in DIFFICULTIES[: DIFFICULTIES.index(difficulty) + 1]:
        rng = random.Random(f"{task.task_id}:{level}")
        text = _RENDERERS[level](_Context(tools, _subject(task), registry, rng))
        minimum = max(DIFFICULTY_PARAMETERS[level].target_words, previous_words + 2)
        text = _pad(text, level, minimum, rng)
        previous_words = len(text.split())
    return text
