"""Loading and validating a JSONL dataset: one JSON object per line with `id`, `prompt`, `reference`."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from fleetbench.data_files import read_data_file
from fleetbench.errors import UserError, choices_text
from fleetbench.limits import name_problem, text_problem
from fleetbench_plugins.suites.jsonl.scorers import SCORERS

BUILTIN = Path(__file__).with_name("data") / "builtin.jsonl"


@dataclass(frozen=True)
class Item:
    """One prompt with its reference answer and how to compare them."""

    item_id: str
    prompt: str
    reference: str
    scorer: str
    category: str


@dataclass(frozen=True)
class Dataset:
    """The items of one file, and a digest of its bytes (part of every unit key: edit the file, re-run)."""

    path: Path
    items: tuple[Item, ...]
    digest: str

    def categories(self) -> list[str]:
        """Categories in order of first appearance."""
        return list(dict.fromkeys(item.category for item in self.items))

    def in_category(self, category: str) -> tuple[Item, ...]:
        return tuple(item for item in self.items if item.category == category)


def load_dataset(name: str, default_scorer: str) -> Dataset:
    """`builtin` or a path to a JSONL file. Every problem names the file and line."""
    path = BUILTIN if name == "builtin" else Path(name).expanduser()
    try:
        raw = read_data_file(path)
    except OSError as exc:
        raise UserError(f"suite.dataset: cannot read {str(path)!r}: {exc.strerror}") from None
    items = [_item(path, number, line, default_scorer) for number, line in _lines(path, raw)]
    if not items:
        raise UserError(f"suite.dataset: {str(path)!r} holds no items")
    seen: set[str] = set()
    for item in items:
        if item.item_id in seen:
            raise UserError(f"{path}: item id {item.item_id!r} appears twice")
        seen.add(item.item_id)
    return Dataset(path, tuple(items), hashlib.sha256(raw).hexdigest()[:16])


def _lines(path: Path, raw: bytes) -> list[tuple[int, str]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _item(path: Path, number: int, line: str, default_scorer: str) -> Item:
    where = f"{path}:{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object")
    for key in ("id", "prompt", "reference"):
        if not isinstance(row.get(key), str | int) or str(row.get(key)) == "":
            raise UserError(f"{where}: missing or empty {key!r}")
    scorer = str(row.get("scorer") or default_scorer)
    if scorer not in SCORERS:
        raise UserError(f"{where}: scorer {scorer!r} is not valid; choices: {choices_text(SCORERS)}")
    if scorer == "regex":
        try:
            re.compile(str(row["reference"]))
        except re.error as exc:
            raise UserError(f"{where}: reference is not a valid regular expression ({exc})") from None
    problem = name_problem(str(row["id"]))
    if problem is not None:
        raise UserError(f"{where}: id {problem}")
    for key in ("prompt", "reference", "category"):
        problem = text_problem(str(row.get(key) or ""))
        if problem is not None:
            raise UserError(f"{where}: {key} {problem}")
    return Item(str(row["id"]), str(row["prompt"]), str(row["reference"]), scorer, str(row.get("category") or "all"))
