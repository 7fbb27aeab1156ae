"""What `fleetbench run` checks after validating every job and before Hydra starts one.

Hydra creates its output directory and log file first thing in a job, and an unreadable or read-only database would
otherwise be found only inside the job, where Hydra prints a traceback. Checking both here turns every such problem
into one line, with nothing written: no `outputs/` directory, no `runs` row.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fleetbench.config import NamingSpec, hydra_context
from fleetbench.config.compose import CONFIG_NAME
from fleetbench.errors import UserError


def check_output_dir(job_overrides: Sequence[str], multirun: bool, composed: DictConfig | None = None) -> None:
    """Fail with one line unless Hydra can create its run (or sweep) directory; creates nothing itself. `composed` is
    the job's configuration with Hydra's settings, when it is already composed."""
    target = _output_dir(job_overrides, multirun, composed)
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        raise UserError(
            f"{key}: cannot create the output directory {target}: {existing} is not a writable directory "
            f"(run fleetbench from a writable directory or set {key})"
        )


def _output_dir(job_overrides: Sequence[str], multirun: bool, composed: DictConfig | None) -> Path:
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    with hydra_context():
        cfg = composed
        if cfg is None:
            cfg = compose(config_name=CONFIG_NAME, overrides=list(job_overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # for `${hydra:runtime.cwd}`, as in the job itself
        check_hydra_environment(cfg)
        try:
            # `${now:...}` resolves here; anything that needs a running job (`${hydra:job.num}`) falls back to
            # the working directory, which is where Hydra's default directories live.
            return Path(str(OmegaConf.select(cfg, key))).absolute()
        except OmegaConfBaseException:
            return Path.cwd()


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
