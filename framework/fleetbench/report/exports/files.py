"""Write export files whole or not at all: each goes to a temporary file beside its target, then is renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fleetbench.errors import UserError


def output_dir(path: str, key: str) -> Path:
    """The existing directory `path`, or a one-line `UserError` naming the key."""
    folder = Path(path)
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise UserError(f"{key}: {path!r} {what}; create it first")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{key}: cannot write into {path!r} (permission denied)")
    return folder


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write; renamed to `target` when the block succeeds, removed otherwise."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        # mkstemp creates the file private (0600); a written export gets the permissions any new file would.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(target: Path, text: str) -> Path:
    """Write `text` to `target` whole."""
    with staged(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return target
