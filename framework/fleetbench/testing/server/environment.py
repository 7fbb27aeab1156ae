"""`fleetbench serve --print-env`: the environment that points the catalog's real-model entries at a local server.

The catalog names its endpoints and keys as `${oc.env:VAR}` references. Each endpoint variable gets the server's
URL in the shape its route expects (`openai` routes call `<base>/chat/completions`, so they get `<url>/v1`), and each
key variable a distinct placeholder key (`local-<var>`), so the request log tells the lanes' keys apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

ENV_REFERENCE = re.compile(r"^\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)(?:,[^}]*)?\}$")


def served_environment(models: DictConfig, url: str) -> dict[str, str]:
    """Variable -> value for every `${oc.env:...}` endpoint and key of the catalog's non-simulated models."""
    catalog = OmegaConf.to_container(models, resolve=False)
    assert isinstance(catalog, dict)
    environment: dict[str, str] = {}
    for model in catalog.values():
        if model.get("provider") == "simulated":
            continue
        base = f"{url}/v1" if model.get("route") == "openai" else url
        for deployment in model.get("deployments") or ():
            for variable in _variables([deployment.get("endpoint")]):
                environment.setdefault(variable, base)
            for variable in _variables(deployment.get("api_keys") or ()):
                environment.setdefault(variable, f"local-{variable.lower().replace('_', '-')}")
    return environment


def _variables(values: Iterable[Any]) -> Iterator[str]:
    for value in values:
        found = ENV_REFERENCE.match(str(value or ""))
        if found:
            yield found.group(1)
