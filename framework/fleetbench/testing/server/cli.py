"""The command line of `fleetbench serve`: options, the served configuration, `--print-env`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fleetbench.config.catalog import build_catalog
from fleetbench.errors import UserError

from .config import ServeConfig, build_config, load_file
from .environment import served_environment

DEFAULT_PORT = 8765


def parse_serve_args(args: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """`--options` of the server, and Hydra overrides (`key=value`, for the catalog) apart."""
    parser = argparse.ArgumentParser(prog="fleetbench serve", add_help=False, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--latency-s", type=float)
    parser.add_argument("--max-concurrency", type=int)
    parser.add_argument("--retry-after-s", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--print-env", action="store_true")
    try:
        options, rest = parser.parse_known_args(list(args))
    except argparse.ArgumentError as exc:
        raise UserError(f"serve: {exc}") from None
    unknown = [a for a in rest if a.startswith("-") or "=" not in a]
    if unknown:
        raise UserError(
            f"serve: unknown argument {unknown[0]!r}; options: --host, --port, --config, --log, --latency-s, "
            "--max-concurrency, --retry-after-s, --seed, --print-env (and key=value overrides of the catalog)"
        )
    if not 0 <= options.port <= 65535:
        raise UserError(f"serve: --port must be from 0 (any free port) to 65535, got {options.port}")
    return options, rest


def served_config(cfg: DictConfig, options: argparse.Namespace) -> ServeConfig:
    """Every deployment of the catalog plus the config file's, with the command line's settings as defaults."""
    file_data = load_file(options.config) if options.config else {}
    overrides: dict[str, Any] = {}
    if options.latency_s is not None:
        overrides["latency"] = {"mean_s": options.latency_s}
    if options.max_concurrency is not None:
        overrides["max_concurrency"] = options.max_concurrency
    if options.retry_after_s is not None:
        overrides["retry_after_s"] = options.retry_after_s
    if options.seed is not None:
        file_data = {**file_data, "seed": options.seed}
    where = f"serve --config {options.config}" if options.config else "serve"
    return build_config(catalog_deployments(cfg), file_data, overrides, where)


def catalog_deployments(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Deployment name -> the base model it serves (and, for a simulated model, its profile)."""
    catalog = build_catalog(cfg.models)
    served: dict[str, dict[str, Any]] = {}
    for model in catalog.models:
        section: dict[str, Any] = {"model": model.name}
        profile = cfg.models[model.handle].params.get("profile") if model.provider == "simulated" else None
        if profile is not None:
            section["profile"] = str(profile)
        for deployment in model.deployments:
            served[deployment.name] = section
    return served


def served_environment_lines(cfg: DictConfig, options: argparse.Namespace) -> str:
    """`VAR=value` lines pointing the catalog's real-model endpoints and keys at this server."""
    url = f"http://{options.host}:{options.port}"
    return "".join(f"{name}={value}\n" for name, value in sorted(served_environment(cfg.models, url).items()))
