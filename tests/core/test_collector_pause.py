"""The cyclic collector is paused while large libraries import, and back on, with their objects frozen, afterwards."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from fleetbench.gcpause import collector_paused, preload


@pytest.fixture(autouse=True)
def _collection_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    (gc.enable if enabled else gc.disable)()


def test_the_body_runs_with_collection_off_and_what_it_built_is_frozen_after() -> None:
    gc.enable()
    frozen_before = gc.get_freeze_count()
    seen: list[bool] = []
    with collector_paused():
        seen.append(gc.isenabled())
        built = [{"n": i} for i in range(1000)]  # tracked containers: they are frozen with the rest
    assert seen == [False]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(built)


def test_collection_comes_back_when_the_body_raises() -> None:
    gc.enable()
    with pytest.raises(ZeroDivisionError), collector_paused():
        _ = 1 / 0
    assert gc.isenabled()


def test_where_collection_was_already_off_it_stays_off_and_nothing_is_frozen() -> None:
    gc.disable()
    frozen_before = gc.get_freeze_count()
    with collector_paused():
        [{"n": i} for i in range(100)]
    assert not gc.isenabled()
    assert gc.get_freeze_count() == frozen_before


def test_preload_imports_what_is_missing_and_leaves_collection_on() -> None:
    gc.enable()
    name = "fleetbench.report.exports.files"
    sys.modules.pop(name, None)
    preload(name)
    assert name in sys.modules
    assert gc.isenabled()


def test_preload_of_a_missing_module_raises_import_error_with_collection_back_on() -> None:
    gc.enable()
    with pytest.raises(ImportError):
        preload("fleetbench_no_such_module_anywhere")
    assert gc.isenabled()


def test_the_command_runs_with_collection_on_and_the_clis_imports_frozen() -> None:
    # The console script's own path: entry.main imports the CLI paused; at exit the collector must be on again (a
    # command that ran with it off for good would keep every reference cycle it made) and the CLI's modules frozen.
    script = textwrap.dedent(
        """
        import atexit, gc, sys
        atexit.register(lambda: print("enabled", gc.isenabled(), "frozen", gc.get_freeze_count(), flush=True))
        sys.argv = ["fleetbench", "plugins"]
        from fleetbench.entry import main
        main()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    at = words.index("enabled")
    assert words[at + 1] == "True"
    assert int(words[at + 3]) > 50_000  # Hydra, OmegaConf and rich alone leave more tracked objects than this
