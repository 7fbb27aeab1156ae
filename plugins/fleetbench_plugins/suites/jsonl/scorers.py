"""Comparing an answer with a reference: `exact`, `contains`, `regex`."""

from __future__ import annotations

import re
from collections.abc import Callable


def _normalise(text: str) -> str:
    return " ".join(text.strip().strip(".").split()).casefold()


def exact(answer: str, reference: str) -> bool:
    """Equal after trimming, a trailing full stop, white space runs and case."""
    return _normalise(answer) == _normalise(reference)


def contains(answer: str, reference: str) -> bool:
    """The reference appears in the answer (case-insensitive)."""
    return _normalise(reference) in _normalise(answer)


def regex(answer: str, reference: str) -> bool:
    """The reference is a regular expression found in the answer."""
    return re.search(reference, answer) is not None


SCORERS: dict[str, Callable[[str, str], bool]] = {"exact": exact, "contains": contains, "regex": regex}
