"""The request log of `fleetbench serve`: one JSON line per request, saying which deployment and which key (as a
fingerprint, never the key) received it, when, and what was answered."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO


class RequestLog:
    """Appends JSON lines to a file, each written whole as it happens (a test reads it while the server runs).

    A write that fails (a full disk, `/dev/full`) is reported once on stderr and logging stops: the server goes on
    answering, where it answered every later request 500 with a traceback.
    """

    def __init__(self, path: Path | None) -> None:
        # Unbuffered: a line reaches the file in one write, and closing has no buffer left to fail on.
        self._handle: BinaryIO | None = None if path is None else path.open("ab", buffering=0)
        self._path = path
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        """Append `entry` as one line."""
        with self._lock:
            if self._handle is None:
                return
            try:
                self._handle.write((json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8"))
            except OSError as error:
                self._handle.close()
                self._handle = None
                reason = error.strerror or str(error)
                print(f"warning: --log: writing {self._path} failed ({reason}); requests are still answered, no "
                      "longer logged", file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every entry of a request log (a last line still being written is skipped)."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries
