"""What `fleetbench run` checks after validating every job and before Hydra starts one.

Hydra creates its output directory and log file first thing in a job, and an unreadable or read-only database would
otherwise be found only inside the job, where Hydra prints a traceback. Checking both here turns every such problem
into one line, with nothing written: no `outputs/` directory, no `runs` row.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

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
        try:
            # `${now:...}` resolves here; anything that needs a running job (`${hydra:job.num}`) falls back to
            # the working directory, which is where Hydra's default directories live.
            return Path(str(OmegaConf.select(cfg, key))).absolute()
        except OmegaConfBaseException as exc:
            parent, _, leaf = key.rpartition(".")
            raw = str(OmegaConf.select(cfg, parent)._get_node(leaf)._value())
            if "${hydra:" in raw:
                return Path.cwd()
            # Anything else (an unset `${oc.env:...}`) fails the job itself too, with a traceback of Hydra's.
            message = str(exc).strip().splitlines()[0]
            raise UserError(f"{key}: cannot resolve {raw!r}: {message}") from None


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
