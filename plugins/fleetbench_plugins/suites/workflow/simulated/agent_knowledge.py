"""What the simulated agent "knows" before reading a conversation: the tool vocabulary, as a pretrained model would.

Built once per process from the shipped registry's names, operations, categories, usage keywords and descriptions.
It deliberately holds no dependency graph and nothing about tasks: dependencies must be learned from `<tool_info>` or
search replies, and a task's required tools only from its prompt.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from fleetbench_plugins.suites.workflow.registry import load_registry, tokenize

# How strongly a word of a request points at a tool, by where the tool carries that word.
_WEIGHTS = (("operation", 3.0), ("keyword", 2.0), ("category", 1.0), ("description", 0.5))
CATEGORY_HINT_WEIGHT = 2.0
_GENERIC = frozenset(tokenize("data file input output result records information task step workflow process"))


@dataclass(frozen=True, eq=False)  # identity hash: it is a cache key
class Knowledge:
    """The tool vocabulary: names, a name-finding regex, and word-to-tool association weights."""

    names: tuple[str, ...]
    categories: tuple[str, ...]
    operations: dict[str, str]
    words: dict[str, dict[str, float]]
    """stem -> {tool: weight}."""
    name_re: re.Pattern[str]
    category_res: tuple[tuple[str, re.Pattern[str]], ...]
    """(category, pattern of its plain-words name, e.g. "data processing")."""

    def mentioned(self, text: str) -> list[str]:
        """The tool names written in `text`, in order of first appearance."""
        return list(dict.fromkeys(self.name_re.findall(text)))

    def match(self, text: str) -> tuple[tuple[str, float], ...]:
        """Every tool that `text` evokes, with a strength, strongest first (ties in registry order)."""
        return _match(self, text)

    def best(self, text: str) -> tuple[str, float] | None:
        """The tool `text` evokes most strongly, or None when it evokes none."""
        ranked = self.match(text)
        return ranked[0] if ranked else None

    def category_hint(self, text: str) -> str | None:
        """The tool category `text` names in plain words ("a data processing step"), if any."""
        return next((category for category, pattern in self.category_res if pattern.search(text)), None)

    def similar(self, tool: str) -> list[str]:
        """Tools a model might confuse with `tool`: the same operation elsewhere, then the same category."""
        operation = self.operations.get(tool, "")
        category = tool[: -len(operation) - 1] if operation and tool.endswith(operation) else ""
        same_op = [n for n in self.names if n != tool and self.operations[n] == operation]
        same_cat = [n for n in self.names if n != tool and category and n.startswith(category + "_")]
        return list(dict.fromkeys(same_op + same_cat))

    def query_words(self, text: str, limit: int = 5) -> list[str]:
        """The content words of `text` a model would type into a search box, in order."""
        picked: list[str] = []
        for word in _WORD_RE.findall(text.lower()):
            if word in _QUERY_STOPWORDS or word in picked:
                continue
            picked.append(word)
            if len(picked) == limit:
                break
        return picked


_WORD_RE = re.compile(r"[a-z][a-z\-]+")
_QUERY_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "how", "i", "in", "into", "is",
    "it", "its", "me", "my", "need", "of", "on", "or", "please", "the", "this", "that", "then", "to", "use", "using",
    "want", "with", "after", "before", "first", "finally", "next", "them", "they", "their", "these", "those", "each",
    "all", "any", "our", "we", "so", "also", "while", "once", "when", "which", "will", "should", "must", "step",
    "steps", "stage",
))  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _match(knowledge: Knowledge, text: str) -> tuple[tuple[str, float], ...]:
    scores: dict[str, float] = {}
    for token in dict.fromkeys(tokenize(text)):
        if token in _GENERIC:
            continue
        for tool, weight in _associated(knowledge, token).items():
            scores[tool] = scores.get(tool, 0.0) + weight
    hint = knowledge.category_hint(text)
    if hint is not None:  # "(a file operation)": the text says which family of tools it means
        for name in knowledge.names:
            if name.startswith(hint + "_"):
                scores[name] = scores.get(name, 0.0) + CATEGORY_HINT_WEIGHT
    order = {name: index for index, name in enumerate(knowledge.names)}
    ranked = sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))
    return tuple(ranked)


@functools.lru_cache(maxsize=8192)
def _associated(knowledge: Knowledge, token: str) -> dict[str, float]:
    """Tools associated with a word stem, allowing the stemmer's near misses (`calcul` ~ `calculat`)."""
    found: dict[str, float] = {}
    for stem, tools in knowledge.words.items():
        if not _stems_match(token, stem):
            continue
        for tool, weight in tools.items():
            found[tool] = max(found.get(tool, 0.0), weight)
    return found


def _stems_match(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    # A prefix must cover most of the longer stem: `log` matches `logg`, `ana` does not match `analyz`.
    return len(short) >= 3 and long.startswith(short) and len(short) >= 0.6 * len(long)


def _associations(fields: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    weights = dict(_WEIGHTS)
    words: dict[str, dict[str, float]] = {}
    for tool, field, text in fields:
        for token in tokenize(text):
            slot = words.setdefault(token, {})
            slot[tool] = max(slot.get(tool, 0.0), weights[field])
    return words


@functools.lru_cache(maxsize=1)
def knowledge() -> Knowledge:
    """The process-wide vocabulary (loaded once; every call after the first is a cache hit)."""
    registry = load_registry()
    tools = list(registry)
    fields = [
        (t.name, field, text)
        for t in tools
        for field, text in (
            ("operation", t.operation),
            ("keyword", " ".join(t.usage_keywords)),
            ("category", t.category.replace("_", " ")),
            ("description", t.description),
        )
    ]
    names = tuple(t.name for t in tools)
    categories = tuple(dict.fromkeys(t.category for t in tools))
    category_res = tuple(
        (c, re.compile(rf"\b{re.escape(c.replace('_', ' ').rstrip('s'))}", re.IGNORECASE)) for c in categories
    )
    # Longest names first, so that a name containing another is found whole.
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return Knowledge(
        names=names,
        categories=categories,
        operations={t.name: t.operation for t in tools},
        words=_associations(fields),
        name_re=re.compile(rf"(?<![A-Za-z0-9_])(?:{alternatives})(?![A-Za-z0-9_])"),
        category_res=category_res,
    )
