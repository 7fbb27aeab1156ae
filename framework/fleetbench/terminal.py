"""Text from users and stored data, made safe to print in a terminal table."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text


def printable(text: str) -> str:
    """`text` on one line of the terminal: control and format characters (a newline, a tab, an escape sequence, a
    right-to-left override, a zero-width joiner in a name) shown as escapes, which would otherwise break the row or
    its alignment, or make the terminal show something other than what is stored."""
    if text.isprintable():  # nearly every cell: one C-level check instead of one per character
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def markdown_cell(text: str) -> str:
    """Text as one cell of a markdown table: `|` escaped, a line break as `<br>` (a raw one would end the row)."""
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def for_terminal(text: str) -> str:
    """Text of many lines (a transcript, a markdown or csv report) made safe for a terminal: each line as `printable`
    shows it, line breaks and tabs kept. Stored text comes from datasets and from models' replies: an escape sequence
    in it would otherwise reach the terminal raw (colours, a changed window title, a clipboard written by OSC 52)."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join("\t".join(printable(part) for part in line.split("\t")) for line in lines)


class PlainTable(Table):
    """A rich table whose text cells are shown as they are: never read as rich markup (a run labelled `[/x]` made
    `fleetbench runs` fail with a MarkupError), their control and format characters escaped (`printable`)."""

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        """`Table.add_row`, with every `str` cell taken as plain text."""
        cells = [Text(printable(cell)) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, **kwargs)
