"""Write export files whole or not at all: each goes to a temporary file beside its target, then is renamed."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fleetbench.errors import UserError
from fleetbench.liveness import process_exists


def output_dir(path: str, key: str) -> Path:
    """The existing directory `path`, or a one-line `UserError` naming the key."""
    folder = Path(path)
    if not folder.is_dir():
        if folder.exists():
            raise UserError(f"{key}: {path!r} is not a directory; give the directory the files go into")
        raise UserError(f"{key}: {path!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{key}: cannot write into {path!r} (permission denied)")
    return folder


PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write; renamed to `target` when the block succeeds, removed otherwise.

    The temporary file's name carries this host (a digest of its name) and process id, so the next export into the
    directory removes what a killed export (SIGKILL, a lost power supply) left behind on this host; another host's
    are left alone, since their writers may still be alive."""
    # A symlink keeps pointing where it did: the file it names is the one replaced. Anything but a regular file
    # (a device such as /dev/null, a FIFO, a socket) cannot be replaced by a renamed file without destroying it:
    # refused, not swapped for a regular file.
    target = Path(os.path.realpath(target))
    if target.exists() and not target.is_file():
        raise OSError(errno.EINVAL, "not a regular file (outputs are written whole and renamed onto their path)")
    _remove_stale_partials(target)
    prefix = _partial_prefix(target, os.getpid())
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=PARTIAL_SUFFIX, dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        # mkstemp creates the file private (0600); a written export gets the permissions any new file would.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _partial_prefix(target: Path, pid: int) -> str:
    return f".{target.name}.{_host()}-{pid}."


def _host() -> str:
    # The host as a short digest: host names hold dots and hyphens, so `vm` must not read `vm-12.lan`'s files as its
    # own process 12's.
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


def _remove_stale_partials(target: Path) -> None:
    """Remove every temporary file an earlier export into this directory left on this host, whatever file it was
    writing (the Inspect logs' names carry the moment they were made: no later export writes those names again),
    once its process is gone."""
    marker = f".{_host()}-"
    for leftover in target.parent.glob(f".*{glob.escape(marker)}*{PARTIAL_SUFFIX}"):
        pid = leftover.name.rsplit(marker, 1)[1].split(".", 1)[0]
        if pid.isdigit() and not process_exists(int(pid)):
            leftover.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(target: Path, text: str) -> Path:
    """Write `text` to `target` whole."""
    with staged(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return target
