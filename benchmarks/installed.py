"""Start-up as on a user's machine: with each module's bytecode compiled.

`pip install` compiles a package's modules to bytecode, and Python writes the bytecode of an editable install's
modules on their first import. Some sandboxes set `PYTHONDONTWRITEBYTECODE`, under which every fleetbench command
compiles fleetbench's own modules again, adding tenths of a second to each start. Benchmarks that time whole commands
call `compile_like_pip` first, so they measure what a user's machine does.
"""

from __future__ import annotations

import compileall
import importlib
import os
import sys
from pathlib import Path

PACKAGES = ("fleetbench", "fleetbench_plugins", "fleetbench_conf", "fleetbench_example")


def compile_like_pip() -> None:
    """Compile the bytecode of fleetbench's packages (and the example plugin's, when installed), and let the commands
    this process starts write the bytecode of anything else they import."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    for name in PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        for folder in getattr(package, "__path__", []):
            compileall.compile_dir(Path(folder), quiet=1)
