"""Reading the data files a configuration names (datasets, task files, tool registries) without hanging.

A path the user gives may name a FIFO or a device: opened as a file, a FIFO waits for a writer for ever, and the run,
still composing its configuration, holds Ctrl-C and SIGTERM until composition ends, so only SIGKILL stopped it (an
attacker's `mkfifo ff; fleetbench run suite.dataset=ff`). The file is opened without blocking and read only if it is a
regular file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

NOT_A_REGULAR_FILE = "not a regular file"


def read_data_file(path: Path) -> bytes:
    """The bytes of the regular file at `path`. `OSError` as `Path.read_bytes` raises it (its `strerror` says why),
    and `OSError(EINVAL, NOT_A_REGULAR_FILE)` for anything but a regular file, without waiting on it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, NOT_A_REGULAR_FILE, str(path))
        return file.read()


def read_data_text(path: Path) -> str:
    """The UTF-8 text of the regular file at `path` (`UnicodeDecodeError` if it is not UTF-8); see `read_data_file`."""
    return read_data_file(path).decode("utf-8")
