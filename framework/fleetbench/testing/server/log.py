"""The request log of `fleetbench serve`: one JSON line per request, saying which deployment and which key (as a
fingerprint, never the key) received it, when, and what was answered."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any


class RequestLog:
    """Appends JSON lines to a file, flushed line by line (a test reads it while the server runs)."""

    def __init__(self, path: Path | None) -> None:
        self._handle: IO[str] | None = None if path is None else path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        if self._handle is not None:
            with self._lock:
                self._handle.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every entry of a request log (a last line still being written is skipped)."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries
