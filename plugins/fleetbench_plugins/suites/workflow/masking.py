"""The parts of a reply that are not meant as actions: code, reasoning and quotations (reference §3.1, §10 item 9).

The original executed every `<tool_call>` it found, including one inside a fenced example, inside the reasoning a
serving stack leaves in the content (`<think>…</think>`), or in a sentence quoting the prompt's syntax. `quiet_regions`
finds those spans; the parser ignores tags that start inside one and records that it did.

- code: a fenced block (``` or ~~~ at the start of a line, to the matching fence or the end) and inline code (`…`);
- reasoning: `<think>…</think>` / `<thinking>…</thinking>`, an unclosed opening running to the end, and everything
  before a closing tag whose opening the serving stack dropped (DeepSeek-R1 style);
- quotation: a markdown block quote line (`> …`), and a tag written straight after a quotation mark, up to the matching
  mark on the same line ("…", '…', “…”, ‘…’).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE_BLOCK = "code block"
INLINE_CODE = "inline code"
REASONING = "<think> block"
QUOTATION = "quotation"

_FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})", re.MULTILINE)
_INLINE_RE = re.compile(r"(`+)[^`\n]+?\1")
_THINK_OPEN_RE = re.compile(r"<\s*(think|thinking)\s*>", re.IGNORECASE)
_THINK_CLOSE_RE = re.compile(r"<\s*/\s*(think|thinking)\s*>", re.IGNORECASE)
_QUOTE_LINE_RE = re.compile(r"^[ \t]*>.*$", re.MULTILINE)
_QUOTED_TAG_RE = re.compile(r"([\"'“‘])(?=\s*<\s*/?\s*tool_(?:call|search|info)\b)", re.IGNORECASE)
_CLOSING_QUOTE = {'"': '"', "'": "'", "“": "”", "‘": "’"}


@dataclass(frozen=True)
class Region:
    """A span [start, end) of a reply that is not meant as an action, and what kind of text it is."""

    start: int
    end: int
    kind: str

    def __contains__(self, position: object) -> bool:
        return isinstance(position, int) and self.start <= position < self.end


def _fences(text: str) -> list[Region]:
    regions: list[Region] = []
    opening: re.Match[str] | None = None
    for match in _FENCE_RE.finditer(text):
        if opening is None:
            opening = match
        elif match.group(1)[0] == opening.group(1)[0] and len(match.group(1)) >= len(opening.group(1)):
            regions.append(Region(opening.start(), match.end(), CODE_BLOCK))
            opening = None
    if opening is not None:
        regions.append(Region(opening.start(), len(text), CODE_BLOCK))
    return regions


def _reasoning(text: str) -> list[Region]:
    regions: list[Region] = []
    position = 0
    first_close = _THINK_CLOSE_RE.search(text)
    first_open = _THINK_OPEN_RE.search(text)
    if first_close is not None and (first_open is None or first_close.start() < first_open.start()):
        regions.append(Region(0, first_close.end(), REASONING))  # the opening tag was stripped by the serving stack
        position = first_close.end()
    while (opening := _THINK_OPEN_RE.search(text, position)) is not None:
        closing = _THINK_CLOSE_RE.search(text, opening.end())
        end = closing.end() if closing is not None else len(text)
        regions.append(Region(opening.start(), end, REASONING))
        position = end
    return regions


def _quotations(text: str) -> list[Region]:
    regions = [Region(m.start(), m.end(), QUOTATION) for m in _QUOTE_LINE_RE.finditer(text)]
    for match in _QUOTED_TAG_RE.finditer(text):
        line_end = text.find("\n", match.end())
        line_end = len(text) if line_end < 0 else line_end
        closing = text.find(_CLOSING_QUOTE[match.group(1)], match.end(), line_end)
        end = closing + 1 if closing >= 0 else line_end
        regions.append(Region(match.start(), end, QUOTATION))
    return regions


def quiet_regions(text: str) -> tuple[Region, ...]:
    """Every span of `text` not meant as an action, sorted by start (regions may overlap)."""
    code = _fences(text)
    inline = [
        Region(m.start(), m.end(), INLINE_CODE)
        for m in _INLINE_RE.finditer(text)
        if not any(m.start() in region for region in code)
    ]
    return tuple(sorted([*code, *inline, *_reasoning(text), *_quotations(text)], key=lambda r: (r.start, r.end)))


def region_at(regions: tuple[Region, ...], position: int) -> Region | None:
    """The first region containing `position`, if any."""
    return next((region for region in regions if position in region), None)


def without_reasoning(text: str) -> str:
    """`text` with its reasoning removed (what counts as the model's own statement, e.g. a completion signal)."""
    kept, position = [], 0
    for region in _reasoning(text):
        kept.append(text[position : region.start])
        position = max(position, region.end)
    kept.append(text[position:])
    return "".join(kept)
