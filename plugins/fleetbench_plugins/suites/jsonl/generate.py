"""Regenerate `data/builtin.jsonl` deterministically: `python -m fleetbench_plugins.suites.jsonl.generate`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

WORDS = [
    "planet",
    "harbor",
    "violet",
    "canyon",
    "lantern",
    "meadow",
    "quartz",
    "saddle",
    "timber",
    "walnut",
    "zephyr",
    "beacon",
    "cobalt",
    "falcon",
    "glacier",
    "island",
    "jasmine",
    "kettle",
    "marble",
    "nectar",
    "orchid",
    "pepper",
]
PER_CATEGORY = 24


def _arithmetic(rng: random.Random, i: int) -> dict[str, Any]:
    a, b = rng.randint(-50, 99), rng.randint(1, 99)
    op = "+-*"[i % 3]
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    return {
        "prompt": f"What is {a} {op} {b}? Answer with the number only.",
        "reference": str(value),
        "scorer": "exact",
    }


def _strings(rng: random.Random, i: int) -> dict[str, Any]:
    word = rng.choice(WORDS)
    if i % 2:
        return {
            "prompt": f"Reverse the letters of '{word}'. Answer with the word only.",
            "reference": word[::-1],
            "scorer": "exact",
        }
    return {
        "prompt": f"Write '{word}' in upper case. Answer with the word only.",
        "reference": word.upper(),
        "scorer": "exact",
    }


def _counting(rng: random.Random, i: int) -> dict[str, Any]:
    word = rng.choice(WORDS)
    if i % 2:
        return {
            "prompt": f"How many letters are in '{word}'? Answer with the number.",
            "reference": rf"\b{len(word)}\b",
            "scorer": "regex",
        }
    letter = rng.choice(sorted(set(word)))
    return {
        "prompt": f"How many times does '{letter}' occur in '{word}'? Answer with the number.",
        "reference": rf"\b{word.count(letter)}\b",
        "scorer": "regex",
    }


def _sorting(rng: random.Random, _i: int) -> dict[str, Any]:
    numbers = rng.sample(range(1, 100), 5)
    return {
        "prompt": f"Sort these numbers ascending: {', '.join(map(str, numbers))}. Answer as a comma-separated list.",
        "reference": ", ".join(map(str, sorted(numbers))),
        "scorer": "exact",
    }


def _comparison(rng: random.Random, _i: int) -> dict[str, Any]:
    a, b = rng.sample(range(100, 1000), 2)
    return {
        "prompt": f"Which is larger, {a} or {b}? Answer with the number.",
        "reference": str(max(a, b)),
        "scorer": "contains",
    }


CATEGORIES = {
    "arithmetic": _arithmetic,
    "strings": _strings,
    "counting": _counting,
    "sorting": _sorting,
    "comparison": _comparison,
}


def build(seed: int = 20250901) -> list[dict[str, Any]]:
    """Every item of the built-in dataset, in a stable order."""
    rng = random.Random(seed)
    items = []
    for category, make in CATEGORIES.items():
        for i in range(PER_CATEGORY):
            items.append({"id": f"{category}-{i:03d}", "category": category, **make(rng, i)})
    return items


def main() -> None:
    path = Path(__file__).with_name("data") / "builtin.jsonl"
    path.write_text("".join(json.dumps(item, sort_keys=True) + "\n" for item in build()), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
