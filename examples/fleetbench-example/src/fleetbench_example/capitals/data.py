"""The capitals table shipped with the suite: country, capital, region and accepted alternative spellings."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import unicodedata
from importlib import resources

DATA_FILE = "capitals.json"


@dataclasses.dataclass(frozen=True)
class Country:
    """One question: the country asked about, its capital, its region and other accepted spellings."""

    country: str
    capital: str
    region: str
    aliases: tuple[str, ...] = ()


@functools.cache
def raw_data() -> bytes:
    """The shipped table's bytes (their digest is part of every unit key)."""
    return resources.files(__package__).joinpath(DATA_FILE).read_bytes()


@functools.cache
def countries() -> tuple[Country, ...]:
    """Every country of the table, in file order."""
    rows = json.loads(raw_data())
    return tuple(Country(r["country"], r["capital"], r["region"], tuple(r.get("aliases", ()))) for r in rows)


def digest() -> str:
    """The table's content digest."""
    return hashlib.sha256(raw_data()).hexdigest()


def normalized(text: str) -> str:
    """A city name compared loosely: accents, case, punctuation and surrounding words like "The capital is" ignored."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    plain = re.sub(r"(?i)^\s*(the\s+)?capital(\s+city)?(\s+of\s+[\w\s]+?)?\s+is\s+", "", plain)
    return " ".join(re.sub(r"[^\w\s]", " ", plain).casefold().split())
