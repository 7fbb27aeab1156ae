"""What `fleetbench run` checks after validating every job and before Hydra starts one.

Hydra creates its output directory and log file first thing in a job, and an unreadable or read-only database would
otherwise be found only inside the job, where Hydra prints a traceback. Checking both here turns every such problem
into one line, with nothing written: no `outputs/` directory, no `runs` row.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fleetbench.config import NamingSpec, hydra_context
from fleetbench.config.compose import CLUSTER_HINT, CONFIG_NAME
from fleetbench.errors import UserError


def check_output_dir(job_overrides: Sequence[str], multirun: bool, composed: DictConfig | None = None) -> None:
    """Fail with one line unless Hydra can create its run (or sweep) directory and the job's log files; creates
    nothing itself. `composed` is the job's configuration with Hydra's settings, when it is already composed."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    with hydra_context():
        cfg = composed
        if cfg is None:
            cfg = compose(config_name=CONFIG_NAME, overrides=list(job_overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # for `${hydra:runtime.cwd}`, as in the job itself
        check_hydra_environment(cfg)
        if multirun:
            check_launcher(cfg)
        # `${now:...}` resolves here; what needs a running job (`${hydra:job.num}`) is None: the output directory
        # then falls back to the working directory, where Hydra's default directories live, and a log file lies in
        # the job's output directory.
        target = _resolved_path(cfg, key) or Path.cwd()
        log_files = [(name, _resolved_path(cfg, name)) for name in _log_file_keys(cfg)]
    _check_creatable(key, target, f"run fleetbench from a writable directory or set {key}")
    for name, path in log_files:
        if path is not None:
            _check_creatable(name, path, f"set {name} to a writable path", log_file=True)


def _check_creatable(key: str, target: Path, hint: str, log_file: bool = False) -> None:
    """One line naming `key` unless `target` can be created (or, for a log file, exists as a writable file)."""
    what = "the log file" if log_file else "the output directory"
    if log_file and target.exists():
        if target.is_file() and _can_append_to(target):
            return
        raise UserError(f"{key}: cannot write {what} {target}: it is not a writable file ({hint})")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not _can_create_in(existing):
        raise UserError(f"{key}: cannot create {what} {target}: {existing} is not a writable directory ({hint})")


def _can_create_in(directory: Path) -> bool:
    """Whether an entry can be created in `directory`, tried for real with a directory removed at once: permission
    bits say nothing for root, nor for /sys or /proc, where creating fails whatever they say."""
    try:
        probe = tempfile.mkdtemp(prefix=".fleetbench-probe-", dir=directory)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def _can_append_to(path: Path) -> bool:
    """Whether `path` opens for appending, tried for real (nothing is written): root may append to no file of
    /proc, whatever its permission bits say."""
    try:
        with path.open("a"):
            return True
    except OSError:
        return False


def _resolved_path(cfg: DictConfig, key: str) -> Path | None:
    """The absolute path at `key`; None when it needs a running job to resolve (call inside `hydra_context`)."""
    try:
        value = OmegaConf.select(cfg, key)
    except OmegaConfBaseException:
        return None
    return Path(str(value)).absolute() if value is not None else None


def _log_file_keys(cfg: DictConfig) -> list[str]:
    """The keys of the log files Hydra's logging settings name (`hydra.job_logging.handlers.file.filename`, ...)."""
    keys = []
    for section in ("job_logging", "hydra_logging"):
        handlers = OmegaConf.select(cfg, f"hydra.{section}.handlers", throw_on_resolution_failure=False)
        if not isinstance(handlers, DictConfig):
            continue
        for name in map(str, handlers):
            handler = handlers._get_node(name)
            if isinstance(handler, DictConfig) and "filename" in handler:
                keys.append(f"hydra.{section}.handlers.{name}.filename")
    return keys


def check_hydra_environment(cfg: DictConfig) -> None:
    """Every environment variable Hydra's own settings read (`hydra.run.dir=${oc.env:OUT}/...`, a job name, a log
    file) is set; else one line naming the key. Hydra would resolve them inside the job, after creating files, and
    fail with a traceback."""
    settings = OmegaConf.to_container(cfg.hydra, resolve=False)
    assert isinstance(settings, dict)
    settings.pop("overrides", None)  # the command line's texts, kept as typed: not settings Hydra resolves
    for key, text in _texts(settings, "hydra"):
        if "${oc.env:" not in text:
            continue
        try:
            OmegaConf.select(cfg, key)
        except OmegaConfBaseException as exc:
            message = str(exc).strip().splitlines()[0]
            if "Environment variable" in message:  # the other failures need a running job (`${hydra:job.num}`)
                raise UserError(f"{key}: cannot resolve {text!r}: {message}") from None


def check_launcher(cfg: DictConfig) -> None:
    """The sweep's launcher is installed; else one line saying where it comes from. (`hydra/launcher=ray` composes
    from fleetbench's own preset even where hydra-ray-launcher is missing: Hydra would fail on it with a traceback.)"""
    target = str(cfg.hydra.launcher.get("_target_", ""))
    module = target.rpartition(".")[0]
    try:
        found = importlib.util.find_spec(module) is not None if module else True
    except ModuleNotFoundError:  # its package is missing
        found = False
    if not found:
        raise UserError(f"hydra/launcher: {target} is not installed; {CLUSTER_HINT}")


def _texts(node: Any, key: str) -> Iterator[tuple[str, str]]:
    """(dotted key, text) of every string in a plain container."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _texts(value, f"{key}.{name}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _texts(value, f"{key}.{index}")
    elif isinstance(node, str):
        yield key, node


def check_storages(configured: Iterable[NamingSpec], notify: Callable[[str], None]) -> None:
    """Open each given storage and bring it to the current schema, proving it takes writes; `notify` gets what an
    upgrade says about existing data.

    This is the first thing a run does anyway; doing it here reports a database path that is a directory, a corrupt
    or read-only file, a missing PostgreSQL database or a missing driver before any job starts.
    """
    storages = [common.storage.create(naming=common.naming) for common in configured]
    try:
        for storage in storages:  # all of them first, so a refused sweep creates no database anywhere
            storage.preflight()
        for storage in storages:
            for notice in storage.migrate():
                notify(notice)
    finally:
        for storage in storages:
            storage.close()
